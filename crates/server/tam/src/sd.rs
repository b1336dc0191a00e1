//! Security Domains on the device side (our definition, see `otrp-agent`): an SD is
//! created on a device by a SUIT manifest `[sd-name, "sd"]` whose payload is an
//! [`SdDescriptor`] (name, SP, authorized TA-signer keys) SUIT-signed by the TAM.
//!
//! When an SD is created through the admin API, the server builds that manifest, signs it
//! with the TAM signing key and keeps it in the catalog as the SD's own component (owned
//! by the SP). Its descriptor is then the single source of truth for which SP signer keys
//! may sign TAs of the SD: the TAM checks uploads against it and the Agent enforces the
//! same list on the device. Deployments of a TA first deploy its SD manifest to the same
//! target (full rollout), so the SD always reaches a device before its TAs.

use otrp_agent::sd::sd_component_id;
use otrp_agent::SdDescriptor;
use otrp_cose::SignOptions;
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use otrp_store::Store;
use otrp_suit::{Envelope, TaManifestBuilder};
use otrp_tam::component_key;

/// The integrated-payload key of the descriptor.
pub const SD_PAYLOAD_KEY: &str = "#sd";

/// The catalog key of the SD manifest of `name`.
pub fn sd_component_key(name: &str) -> Vec<u8> {
    component_key(&[name.as_bytes().to_vec(), b"sd".to_vec()])
}

/// Builds the SD manifest for `desc`, SUIT-signed by the TAM key.
pub fn sd_manifest(
    provider: &dyn CryptoProvider,
    tam_key: &PrivateKey,
    desc: &SdDescriptor,
    seq: u64,
) -> Result<Vec<u8>, String> {
    let bytes = desc.to_cbor().map_err(|e| e.to_string())?;
    TaManifestBuilder::new(sd_component_id(&desc.name), seq)
        .image_of(&bytes)
        .integrated_payload(SD_PAYLOAD_KEY, bytes)
        .uninstall(true)
        .build_signed(provider, tam_key, &SignOptions::default())
        .and_then(|e| e.encode())
        .map_err(|e| e.to_string())
}

/// The descriptor inside a stored SD manifest.
pub fn descriptor_of(envelope: &[u8]) -> Result<SdDescriptor, String> {
    let env = Envelope::decode(envelope).map_err(|e| e.to_string())?;
    let payload = env
        .integrated_payload(SD_PAYLOAD_KEY)
        .ok_or_else(|| "SD manifest without its descriptor payload".to_string())?;
    SdDescriptor::from_cbor(payload).map_err(|e| e.to_string())
}

/// The current descriptor of SD `name` (None when the SD has no manifest yet).
pub async fn current_descriptor(
    store: &dyn Store,
    name: &str,
) -> Result<Option<(SdDescriptor, u64)>, String> {
    let Some(m) = store
        .latest_manifest(&sd_component_key(name), false)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    Ok(Some((descriptor_of(&m.envelope)?, m.seq)))
}

/// The SP signer keys authorized for SD `name`.
pub async fn signers(store: &dyn Store, name: &str) -> Result<Vec<PublicKey>, String> {
    Ok(current_descriptor(store, name)
        .await?
        .map(|(d, _)| d.signers)
        .unwrap_or_default())
}
