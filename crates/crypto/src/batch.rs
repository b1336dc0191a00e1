//! Ed25519 batch verification (std only): many signatures checked together for less
//! than the cost of checking each (`ed25519-dalek`'s `verify_batch`), e.g. the reports
//! of a batch's devices.

use alloc::vec::Vec;

use crate::{CryptoError, PublicKey, SigAlg};

/// Verifies Ed25519 signature `signatures[i]` of `messages[i]` under `keys[i]` for every
/// `i`, together. `Ok` when all verify; an error when any does not (or a key is not an
/// Ed25519 key, a signature is not 64 bytes, or the lengths differ) without saying which:
/// check them one by one to find out. As with any batch check, a signature its own key's
/// holder crafts at the edge of the Ed25519 rules (small-order components) may be judged
/// differently than alone; without the private key no one can make one pass.
///
/// ```
/// use otrp_crypto::{ed25519_verify_batch, default_provider, KeyKind, PrivateKey};
/// let mut rng = rand_core::OsRng;
/// let keys: Vec<PrivateKey> = (0..3)
///     .map(|_| PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap())
///     .collect();
/// let msgs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 10]).collect();
/// let p = default_provider();
/// let sigs: Vec<Vec<u8>> = keys.iter().zip(&msgs).map(|(k, m)| p.sign(k.default_alg(), k, m).unwrap()).collect();
/// let pubs: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
/// let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
/// let s: Vec<&[u8]> = sigs.iter().map(Vec::as_slice).collect();
/// let k: Vec<_> = pubs.iter().collect();
/// assert!(ed25519_verify_batch(&m, &s, &k).is_ok());
/// ```
pub fn ed25519_verify_batch(
    messages: &[&[u8]],
    signatures: &[&[u8]],
    keys: &[&PublicKey],
) -> Result<(), CryptoError> {
    let bad = CryptoError::BadSignature {
        alg: SigAlg::Ed25519,
    };
    if messages.len() != signatures.len() || messages.len() != keys.len() {
        return Err(bad);
    }
    let mut sigs = Vec::with_capacity(signatures.len());
    for s in signatures {
        let s: &[u8; 64] = (*s)
            .try_into()
            .map_err(|_| CryptoError::MalformedSignature {
                alg: SigAlg::Ed25519,
                len: s.len(),
            })?;
        sigs.push(ed25519_dalek::Signature::from_bytes(s));
    }
    let mut vks = Vec::with_capacity(keys.len());
    for k in keys {
        match k {
            PublicKey::Ed25519(vk) => vks.push(*vk),
            _ => {
                return Err(CryptoError::KeyAlgMismatch {
                    alg: SigAlg::Ed25519,
                    key: "not Ed25519",
                })
            }
        }
    }
    ed25519_dalek::verify_batch(messages, &sigs, &vks).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{default_provider, KeyKind, PrivateKey};
    use alloc::vec;

    fn signed(n: u8) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<PublicKey>) {
        let mut rng = rand_core::OsRng;
        let p = default_provider();
        let (mut msgs, mut sigs, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let k = PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap();
            let m = vec![i; 40];
            sigs.push(p.sign(SigAlg::Ed25519, &k, &m).unwrap());
            msgs.push(m);
            keys.push(k.public_key());
        }
        (msgs, sigs, keys)
    }

    fn check(msgs: &[Vec<u8>], sigs: &[Vec<u8>], keys: &[PublicKey]) -> Result<(), CryptoError> {
        let m: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let s: Vec<&[u8]> = sigs.iter().map(Vec::as_slice).collect();
        let k: Vec<&PublicKey> = keys.iter().collect();
        ed25519_verify_batch(&m, &s, &k)
    }

    #[test]
    fn a_batch_verifies_only_when_every_signature_does() {
        let (msgs, sigs, keys) = signed(64);
        assert!(check(&msgs, &sigs, &keys).is_ok());
        assert!(check(&[], &[], &[]).is_ok(), "an empty batch");
        // One flipped bit, in any one signature or message, fails the batch.
        for i in [0usize, 31, 63] {
            let mut s = sigs.clone();
            s[i][5] ^= 1;
            assert!(check(&msgs, &s, &keys).is_err(), "signature {i}");
            let mut m = msgs.clone();
            m[i][0] ^= 1;
            assert!(check(&m, &sigs, &keys).is_err(), "message {i}");
        }
        // Signatures swapped between two keys.
        let mut k = keys.clone();
        k.swap(3, 4);
        assert!(check(&msgs, &sigs, &k).is_err());
    }

    #[test]
    fn misshapen_input_is_refused() {
        let (msgs, sigs, keys) = signed(2);
        assert!(check(&msgs[..1], &sigs, &keys).is_err(), "lengths differ");
        let mut short = sigs.clone();
        short[1].pop();
        assert!(matches!(
            check(&msgs, &short, &keys),
            Err(CryptoError::MalformedSignature { len: 63, .. })
        ));
        let mut rng = rand_core::OsRng;
        let p256 = PrivateKey::generate(KeyKind::P256, &mut rng)
            .unwrap()
            .public_key();
        assert!(matches!(
            check(&msgs, &sigs, &[keys[0].clone(), p256]),
            Err(CryptoError::KeyAlgMismatch { .. })
        ));
    }
}
