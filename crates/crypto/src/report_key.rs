//! Per-device report keys of a batch, diversified from the batch's report master secret.
//!
//! A batch's devices send the TAM asynchronous reports (DESIGN.md §3.2). Signed reports
//! cost the TAM one signature check each; a device provisioned with a **report key**
//! authenticates its reports with HMAC-SHA-256 (COSE_Mac0) instead. The OEM keeps one
//! 32-byte master secret per batch and gives each device
//!
//! ```text
//! report_key = HKDF-SHA-256(salt = "otrp-batch-report-key-v1",
//!                           ikm  = master,
//!                           info = batch-id || 0x00 || device-id)      (32 bytes)
//! ```
//!
//! (key diversification, as GlobalPlatform derives per-card keys from a master key). The
//! TAM, configured with the master, derives any device's key from the device id the report
//! names: no per-device key storage, and one device's key opens neither another device's
//! reports nor the master.

use zeroize::Zeroizing;

use crate::{CryptoError, CryptoProvider};

/// Length of a report master secret and of a report key.
pub const REPORT_KEY_LEN: usize = 32;

/// HKDF salt of [`derive`]: names the purpose and the version of the derivation.
pub const REPORT_KEY_SALT: &[u8] = b"otrp-batch-report-key-v1";

/// The report key of device `device_id` (its UEID) in batch `batch_id` under `master`.
///
/// ```
/// use otrp_crypto::report_key::derive;
/// let p = otrp_crypto::default_provider();
/// let a = derive(p, &[1; 32], "lot-1", b"\x01dev-a").unwrap();
/// let b = derive(p, &[1; 32], "lot-1", b"\x01dev-b").unwrap();
/// assert_ne!(*a, *b);
/// assert_eq!(*a, *derive(p, &[1; 32], "lot-1", b"\x01dev-a").unwrap());
/// ```
pub fn derive(
    provider: &dyn CryptoProvider,
    master: &[u8; REPORT_KEY_LEN],
    batch_id: &str,
    device_id: &[u8],
) -> Result<Zeroizing<[u8; REPORT_KEY_LEN]>, CryptoError> {
    let mut info = alloc::vec::Vec::with_capacity(batch_id.len() + 1 + device_id.len());
    info.extend_from_slice(batch_id.as_bytes());
    info.push(0);
    info.extend_from_slice(device_id);
    let mut out = Zeroizing::new([0u8; REPORT_KEY_LEN]);
    provider.hkdf_sha256(REPORT_KEY_SALT, master.as_slice(), &info, out.as_mut())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_master_batch_and_device_and_match_across_providers() {
        let rc = crate::rust_crypto_provider();
        let k = derive(rc, &[1; 32], "lot-1", b"dev").unwrap();
        assert_ne!(*k, *derive(rc, &[2; 32], "lot-1", b"dev").unwrap());
        assert_ne!(*k, *derive(rc, &[1; 32], "lot-2", b"dev").unwrap());
        assert_ne!(*k, *derive(rc, &[1; 32], "lot-1", b"dew").unwrap());
        // The separator keeps ("lot-1", "\0x") and ("lot-1\0", "x")-like splits apart.
        assert_ne!(
            *derive(rc, &[1; 32], "a", b"b").unwrap(),
            *derive(rc, &[1; 32], "ab", b"").unwrap()
        );
        assert_eq!(
            *k,
            *derive(crate::default_provider(), &[1; 32], "lot-1", b"dev").unwrap()
        );
    }
}
