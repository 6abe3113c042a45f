//! Short-lived records in the store (`specs/storage.md` §3.11, prefix `e/`): issued access
//! tokens, one-time nonces and the replay caches of assertion and proof ids, each with its
//! expiry. Kept in the store rather than in memory, so that on a shared store (PostgreSQL) every
//! replica of a node answers for what another one issued, and a restart or a failover forgets no
//! token it gave out. Keys are SHA-256 digests of what the caller names (a bearer token is never
//! stored as itself).

use std::sync::Arc;

use knoop_gossip::StoreError;
use sha2::{Digest, Sha256};

use super::node_store::{Family, NodeStore};

/// One kind of short-lived record: its key prefix under `e/` in the `private` family.
#[derive(Clone)]
pub struct Expiring {
    store: Arc<dyn NodeStore>,
    prefix: Vec<u8>,
    /// Whether [`Expiring::put`] waits for the disk (a token given out must survive a crash;
    /// a nonce lost in one only makes its client ask for another).
    durable: bool,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    knoop_gossip::tx::now_ms()
}

impl Expiring {
    /// The records of kind `kind` (an ASCII name such as `token`).
    pub fn new(store: Arc<dyn NodeStore>, kind: &str) -> Self {
        Expiring {
            store,
            prefix: format!("e/{kind}/").into_bytes(),
            durable: true,
        }
    }

    /// The same, with puts that do not wait for the disk: for records whose loss in a crash
    /// costs a client one retry, written by requests anyone may send (nonces).
    pub fn lazy(store: Arc<dyn NodeStore>, kind: &str) -> Self {
        Expiring {
            durable: false,
            ..Self::new(store, kind)
        }
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut h = Sha256::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                h.update([0u8]);
            }
            h.update(p);
        }
        [self.prefix.as_slice(), h.finalize().as_slice()].concat()
    }

    fn encode(value: &[u8], expires_ms: u64) -> Vec<u8> {
        [expires_ms.to_be_bytes().as_slice(), value].concat()
    }

    /// `(expires_ms, value)` of a stored record.
    fn decode(stored: &[u8]) -> Option<(u64, &[u8])> {
        let (head, value) = stored.split_at_checked(8)?;
        Some((u64::from_be_bytes(head.try_into().ok()?), value))
    }

    /// Keeps `value` under `key` (its parts hashed together) until `expires_ms`.
    pub fn put(&self, key: &[&[u8]], value: &[u8], expires_ms: u64) -> Result<(), StoreError> {
        let record = (self.key(key), Self::encode(value, expires_ms));
        self.store
            .write(Family::Private, &[record], &[], self.durable)
    }

    /// The value under `key` while it lives.
    pub fn get(&self, key: &[&[u8]]) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.store.get_private(&self.key(key))?;
        Ok(found.and_then(|s| {
            let (expires, value) = Self::decode(&s)?;
            (expires > now_ms()).then(|| value.to_vec())
        }))
    }

    /// Removes the record under `key` and returns its value if it was live: a one-time use,
    /// which exactly one caller wins.
    pub fn take(&self, key: &[&[u8]]) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.store.take(Family::Private, &self.key(key))?;
        Ok(found.and_then(|s| {
            let (expires, value) = Self::decode(&s)?;
            (expires > now_ms()).then(|| value.to_vec())
        }))
    }

    /// Records `key` until `expires_ms` unless a record is there already: `false` for a replay.
    pub fn insert_new(&self, key: &[&[u8]], expires_ms: u64) -> Result<bool, StoreError> {
        self.store.insert_new(
            Family::Private,
            &self.key(key),
            &Self::encode(&[], expires_ms),
        )
    }

    /// Deletes the records that have expired; returns how many.
    pub fn sweep(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let dead: Vec<Vec<u8>> = self
            .store
            .scan_private(&self.prefix)?
            .into_iter()
            .filter(|(_, v)| Self::decode(v).is_none_or(|(expires, _)| expires <= now))
            .map(|(k, _)| k)
            .collect();
        self.store.delete_private(&dead)?;
        Ok(dead.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_live_until_they_expire_and_are_taken_once() {
        crate::store::conformance::both(|open| {
            let store = open();
            let tokens = Expiring::new(store.clone(), "token");
            let nonces = Expiring::new(store.clone(), "nonce");
            let now = now_ms();
            tokens.put(&[b"tok-1"], b"grant", now + 60_000).unwrap();
            tokens.put(&[b"tok-old"], b"grant", now - 1).unwrap();
            assert_eq!(
                tokens.get(&[b"tok-1"]).unwrap().as_deref(),
                Some(&b"grant"[..])
            );
            assert!(tokens.get(&[b"tok-old"]).unwrap().is_none(), "expired");
            assert!(nonces.get(&[b"tok-1"]).unwrap().is_none(), "kinds apart");
            // The token itself is not in the store, only its digest.
            assert!(store
                .scan_private(b"e/")
                .unwrap()
                .iter()
                .all(|(k, _)| !k.windows(5).any(|w| w == b"tok-1")));
            nonces.put(&[b"n"], b"", now + 60_000).unwrap();
            assert!(nonces.take(&[b"n"]).unwrap().is_some());
            assert!(nonces.take(&[b"n"]).unwrap().is_none(), "used once");
            let jtis = Expiring::new(store.clone(), "jti");
            assert!(jtis.insert_new(&[b"iss", b"jti-1"], now + 60_000).unwrap());
            assert!(
                !jtis.insert_new(&[b"iss", b"jti-1"], now + 60_000).unwrap(),
                "replay"
            );
            assert!(
                jtis.insert_new(&[b"is", b"sjti-1"], now + 60_000).unwrap(),
                "parts apart"
            );
            assert_eq!(tokens.sweep().unwrap(), 1);
            assert_eq!(
                tokens.get(&[b"tok-1"]).unwrap().as_deref(),
                Some(&b"grant"[..])
            );
        });
    }

    /// Of many threads taking one nonce at once (replicas and handlers), exactly one wins.
    #[test]
    fn a_nonce_is_taken_by_exactly_one_of_many() {
        crate::store::conformance::both(|open| {
            let nonces = Expiring::new(open(), "nonce");
            nonces.put(&[b"once"], b"", now_ms() + 60_000).unwrap();
            let winners: usize = (0..8)
                .map(|_| {
                    let n = nonces.clone();
                    std::thread::spawn(move || n.take(&[b"once"]).unwrap().is_some())
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| usize::from(t.join().unwrap()))
                .sum();
            assert_eq!(winners, 1);
        });
    }
}
