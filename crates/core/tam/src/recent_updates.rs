//! The Update tokens this TAM issued recently, each with the token's record and the
//! Agent key its device answered with, so that the device's Success (or Error) is checked
//! without reading the store first.
//!
//! A cache, not state: the store holds every token, and the step that spends one
//! (`Store::consume_and_apply`) still refuses a token that is unknown, spent or expired
//! there. A token that is not here (another replica issued it, this process restarted,
//! or it was pushed out) is read from the store as before; so is one whose message does
//! not verify with the key remembered here (the device's other keys are in the store).
//! Bounded: the oldest entries go first once [`RecentUpdates::CAPACITY`] are held.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use otrp_store::model::{AgentKeyRecord, TokenRecord};

/// Update tokens issued by this TAM and not yet answered (first in, first out).
#[derive(Debug, Default)]
pub(crate) struct RecentUpdates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_token: HashMap<Vec<u8>, (TokenRecord, AgentKeyRecord)>,
    order: VecDeque<Vec<u8>>,
}

impl RecentUpdates {
    /// Entries held at most (about 0.5 KiB each with a short `sent` list).
    pub(crate) const CAPACITY: usize = 8192;

    /// Remembers an Update token once it is committed to the store, with the Agent key
    /// the device signed its QueryResponse with.
    pub(crate) fn insert(&self, token: TokenRecord, key: AgentKeyRecord) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while g.order.len() >= Self::CAPACITY {
            if let Some(old) = g.order.pop_front() {
                g.by_token.remove(&old);
            }
        }
        g.order.push_back(token.token.clone());
        g.by_token.insert(token.token.clone(), (token, key));
    }

    /// Takes the entry of `token` out (a token is answered once).
    pub(crate) fn take(&self, token: &[u8]) -> Option<(TokenRecord, AgentKeyRecord)> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let hit = g.by_token.remove(token)?;
        if g.order.front().is_some_and(|t| t == token) {
            g.order.pop_front();
        }
        Some(hit)
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_token
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otrp_store::model::TokenKind;

    fn token(i: u32) -> TokenRecord {
        TokenRecord {
            token: i.to_be_bytes().to_vec(),
            kind: TokenKind::Update,
            device_id: Some(format!("dev-{i}")),
            challenge: None,
            data_items: 0,
            sent: Vec::new(),
            created_at: 1,
            expires_at: 2,
            consumed_at: None,
        }
    }

    fn key(i: u32) -> AgentKeyRecord {
        AgentKeyRecord {
            kid: vec![i as u8],
            device_id: format!("dev-{i}"),
            cose_key: vec![0xa0],
            bound_at: 1,
        }
    }

    #[test]
    fn an_entry_is_taken_once() {
        let r = RecentUpdates::default();
        r.insert(token(1), key(1));
        let (t, k) = r.take(&1u32.to_be_bytes()).expect("held");
        assert_eq!((t, k), (token(1), key(1)));
        assert!(r.take(&1u32.to_be_bytes()).is_none());
        assert!(r.take(&2u32.to_be_bytes()).is_none());
    }

    #[test]
    fn the_oldest_entries_go_first_past_capacity() {
        let r = RecentUpdates::default();
        let n = RecentUpdates::CAPACITY as u32 + 10;
        for i in 0..n {
            r.insert(token(i), key(i));
        }
        assert_eq!(r.len(), RecentUpdates::CAPACITY);
        for i in 0..10u32 {
            assert!(r.take(&i.to_be_bytes()).is_none(), "{i} was pushed out");
        }
        assert_eq!(r.take(&10u32.to_be_bytes()).map(|e| e.1), Some(key(10)));
        assert_eq!(
            r.take(&(n - 1).to_be_bytes()).map(|e| e.1),
            Some(key(n - 1))
        );
    }

    #[test]
    fn taken_entries_do_not_hold_a_place() {
        let r = RecentUpdates::default();
        // Answered as fast as issued: the queue of order never outgrows the entries.
        for i in 0..(3 * RecentUpdates::CAPACITY as u32) {
            r.insert(token(i), key(i));
            assert!(r.take(&i.to_be_bytes()).is_some());
        }
        assert_eq!(r.len(), 0);
        assert!(r.inner.lock().unwrap().order.is_empty());
    }
}
