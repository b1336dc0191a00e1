//! Stateless QueryRequest tokens: the TAM writes nothing when it answers an empty POST.
//!
//! Opening a session is the one request anybody may send without a signature. Before,
//! each one wrote a token row and a challenge row (one SQL transaction, ~70 % of the
//! request's CPU on SQLite); now the token carries what the TAM needs to check the answer
//! and is authenticated with a key only the TAM has:
//!
//! ```text
//! token (16 B) = expires_at (u32 BE, Unix s) ‖ data-item-requested (u8) ‖ random (6 B)
//!                ‖ HMAC-SHA-256(key, "otrp-query-token-v1" ‖ the first 11 B)[..5]
//! challenge    = HMAC-SHA-256(key, "otrp-query-challenge-v1" ‖ token)   (32 B)
//! ```
//!
//! * **One use**: the QueryResponse's transaction inserts the token as consumed; a second
//!   answer with the same token hits the primary key and is refused as replayed. The row
//!   lives until the token expires and is purged like any other.
//! * **Freshness of the evidence**: the challenge is derived from the token, so it is used
//!   once with it; an attacker who never received the QueryRequest cannot compute it.
//! * **The MAC** is short (40 bits) because forging a token gains nothing: tokens are free
//!   to obtain with an empty POST, every QueryResponse is verified against the device's
//!   key and evidence, the expiry is capped at now + the token lifetime, and a token that
//!   does not open is looked up in the store like any other (so old stored tokens and
//!   Update tokens keep working).
//! * **Key**: HKDF-SHA-256 over the TAM's signing keys, so every replica of one TAM and a
//!   restarted TAM derive the same key with nothing more to store or configure; rotating
//!   the signing keys invalidates open QueryRequests (devices start a new session).

use otrp_crypto::CryptoProvider;
use rand_core::CryptoRngCore;

use crate::session::TamKeys;

/// Bytes of a stateless QueryRequest token.
pub const TOKEN_LEN: usize = 16;
const MAC_LEN: usize = 5;
const BODY_LEN: usize = TOKEN_LEN - MAC_LEN;
const TOKEN_LABEL: &[u8] = b"otrp-query-token-v1";
const CHALLENGE_LABEL: &[u8] = b"otrp-query-challenge-v1";

/// The key that issues and opens stateless QueryRequest tokens.
#[derive(Clone)]
pub struct QueryTokenKey {
    key: [u8; 32],
    provider: &'static dyn CryptoProvider,
}

impl std::fmt::Debug for QueryTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTokenKey").finish_non_exhaustive()
    }
}

/// What an authentic token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// When the token expires (Unix seconds).
    pub expires_at: u64,
    /// The `data-item-requested` bits of the QueryRequest.
    pub data_items: u8,
}

impl QueryTokenKey {
    /// Derives the key from the TAM's signing keys; `None` if they cannot be exported.
    pub fn derive(keys: &TamKeys, provider: &'static dyn CryptoProvider) -> Option<Self> {
        let mut ikm = keys.p256.to_pkcs8_pem().ok()?.into_bytes();
        ikm.extend_from_slice(keys.ed25519.to_pkcs8_pem().ok()?.as_bytes());
        let mut key = [0u8; 32];
        provider
            .hkdf_sha256(b"otrp-tam", &ikm, b"teep query token key v1", &mut key)
            .ok()?;
        Some(QueryTokenKey { key, provider })
    }

    fn tag(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut input = Vec::with_capacity(label.len() + data.len());
        input.extend_from_slice(label);
        input.extend_from_slice(data);
        self.provider.hmac_sha256(&self.key, &input)
    }

    /// A new token expiring at `expires_at` (saturated to the u32 range).
    pub fn issue<R: CryptoRngCore>(
        &self,
        expires_at: u64,
        data_items: u8,
        rng: &mut R,
    ) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        let exp = u32::try_from(expires_at).unwrap_or(u32::MAX);
        t[..4].copy_from_slice(&exp.to_be_bytes());
        t[4] = data_items;
        rng.fill_bytes(&mut t[5..BODY_LEN]);
        let mac = self.tag(TOKEN_LABEL, &t[..BODY_LEN]);
        t[BODY_LEN..].copy_from_slice(&mac[..MAC_LEN]);
        t
    }

    /// What `token` says, if this key issued it (constant-time tag comparison).
    pub fn open(&self, token: &[u8]) -> Option<Opened> {
        let t: &[u8; TOKEN_LEN] = token.try_into().ok()?;
        let mac = self.tag(TOKEN_LABEL, &t[..BODY_LEN]);
        let diff = mac[..MAC_LEN]
            .iter()
            .zip(&t[BODY_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        let exp = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        Some(Opened {
            expires_at: u64::from(exp),
            data_items: t[4],
        })
    }

    /// The attestation challenge of the QueryRequest that carried `token`.
    pub fn challenge(&self, token: &[u8]) -> Vec<u8> {
        self.tag(CHALLENGE_LABEL, token).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otrp_crypto::{KeyKind, PrivateKey};
    use rand_chacha::rand_core::SeedableRng;

    fn keys(seed: u64) -> TamKeys {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        TamKeys {
            p256: PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
            ed25519: PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
        }
    }

    #[test]
    fn issued_tokens_open_with_what_they_carry_and_only_under_their_key() {
        let p = otrp_crypto::default_provider();
        let k = QueryTokenKey::derive(&keys(1), p).unwrap();
        let same = QueryTokenKey::derive(&keys(1), p).unwrap();
        let other = QueryTokenKey::derive(&keys(2), p).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let t = k.issue(1_800_000_000, 0b11, &mut rng);
        let want = Opened {
            expires_at: 1_800_000_000,
            data_items: 0b11,
        };
        assert_eq!(k.open(&t), Some(want));
        // A replica (or a restart) with the same signing keys derives the same key.
        assert_eq!(same.open(&t), Some(want));
        assert_eq!(same.challenge(&t), k.challenge(&t));
        assert_eq!(other.open(&t), None);
        assert_ne!(other.challenge(&t), k.challenge(&t));
        // Every bit of the token is covered.
        for i in 0..TOKEN_LEN * 8 {
            let mut f = t;
            f[i / 8] ^= 1 << (i % 8);
            assert_eq!(k.open(&f), None, "bit {i} flipped still opens");
        }
        assert_eq!(k.open(&t[..15]), None);
        assert_eq!(k.open(&[t.as_slice(), &[0]].concat()), None);
        // Two tokens differ (random part) and so do their challenges.
        let t2 = k.issue(1_800_000_000, 0b11, &mut rng);
        assert_ne!(t, t2);
        assert_ne!(k.challenge(&t), k.challenge(&t2));
        assert_eq!(k.challenge(&t).len(), 32);
    }

    #[test]
    fn expiry_beyond_u32_saturates() {
        let p = otrp_crypto::default_provider();
        let k = QueryTokenKey::derive(&keys(3), p).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let t = k.issue(u64::MAX, 0, &mut rng);
        assert_eq!(k.open(&t).unwrap().expires_at, u64::from(u32::MAX));
    }
}
