//! The storage interface of the log, and an in-memory implementation for tests and simulation.
//!
//! The node supplies a durable implementation (rocksdb, `node/src/store.rs`). The layout it must
//! keep is in `specs/storage.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::error::StoreError;
use crate::tx::{Hash32, TxId};

/// What the store keeps of one transaction besides its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTx {
    /// Local arrival sequence number (1-based, dense per node).
    pub seq: u64,
    pub sigt: u64,
    pub lc: u64,
    pub envelope: String,
}

/// One atomic, durable write.
#[derive(Clone, Debug, Default)]
pub struct CommitBatch {
    pub txs: Vec<(TxId, StoredTx)>,
    pub payloads: Vec<(Hash32, Vec<u8>)>,
    pub heads_added: Vec<TxId>,
    pub heads_removed: Vec<TxId>,
    /// `(content type, seq, id)` of every transaction in `txs`: the by-type index.
    pub by_type: Vec<(String, u64, TxId)>,
    /// Fsync before returning. Set when the batch holds something acknowledged to a caller.
    pub durable: bool,
}

/// A key-value store holding the log. Implementations must make `commit` atomic.
pub trait Store: Send + Sync + 'static {
    fn get_tx(&self, id: &TxId) -> Result<Option<StoredTx>, StoreError>;
    fn contains_tx(&self, id: &TxId) -> Result<bool, StoreError>;
    fn get_payload(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError>;
    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError>;
    /// Every transaction as `(sigt, id)`, in any order: the set index, read at start-up from a
    /// compact index rather than by replaying the log.
    fn load_set(&self) -> Result<Vec<(u64, TxId)>, StoreError>;
    fn load_heads(&self) -> Result<Vec<TxId>, StoreError>;
    /// The highest arrival sequence number in use (0 when empty).
    fn last_seq(&self) -> Result<u64, StoreError>;
    /// Transaction ids with `seq > after`, in sequence order, at most `limit`.
    fn list_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, TxId)>, StoreError>;
    /// Ids of transactions with content type `cty` and `seq > after`, in sequence order, at most
    /// `limit`.
    fn list_by_type(
        &self,
        cty: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TxId)>, StoreError>;
    /// Replaces the remembered peers: `(peer id, listen addresses)`, as text.
    fn save_peers(&self, peers: &[(String, Vec<String>)]) -> Result<(), StoreError>;
    /// The peers remembered by the last [`Store::save_peers`].
    fn load_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError>;
}

/// An in-memory [`Store`].
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    txs: HashMap<TxId, StoredTx>,
    by_seq: BTreeMap<u64, TxId>,
    payloads: HashMap<Hash32, Vec<u8>>,
    heads: std::collections::BTreeSet<TxId>,
    peers: Vec<(String, Vec<String>)>,
    by_type: std::collections::BTreeSet<(String, u64, TxId)>,
}

impl MemStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemInner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError("memstore lock poisoned".into()))
    }
}

impl Store for MemStore {
    fn get_tx(&self, id: &TxId) -> Result<Option<StoredTx>, StoreError> {
        Ok(self.lock()?.txs.get(id).cloned())
    }
    fn contains_tx(&self, id: &TxId) -> Result<bool, StoreError> {
        Ok(self.lock()?.txs.contains_key(id))
    }
    fn get_payload(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.payloads.get(hash).cloned())
    }
    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        for (id, tx) in batch.txs {
            g.by_seq.insert(tx.seq, id);
            g.txs.insert(id, tx);
        }
        g.payloads.extend(batch.payloads);
        for h in batch.heads_removed {
            g.heads.remove(&h);
        }
        g.heads.extend(batch.heads_added);
        g.by_type.extend(batch.by_type);
        Ok(())
    }
    fn load_set(&self) -> Result<Vec<(u64, TxId)>, StoreError> {
        Ok(self
            .lock()?
            .txs
            .iter()
            .map(|(id, t)| (t.sigt, *id))
            .collect())
    }
    fn load_heads(&self) -> Result<Vec<TxId>, StoreError> {
        Ok(self.lock()?.heads.iter().copied().collect())
    }
    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.by_seq.keys().next_back().copied().unwrap_or(0))
    }
    fn list_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, TxId)>, StoreError> {
        let g = self.lock()?;
        Ok(g.by_seq
            .range(after + 1..)
            .take(limit)
            .map(|(s, id)| (*s, *id))
            .collect())
    }
    fn list_by_type(
        &self,
        cty: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TxId)>, StoreError> {
        let g = self.lock()?;
        let from = (cty.to_owned(), after.saturating_add(1), TxId::default());
        Ok(g.by_type
            .range(from..)
            .take_while(|(c, _, _)| c == cty)
            .take(limit)
            .map(|(_, s, id)| (*s, *id))
            .collect())
    }
    fn save_peers(&self, peers: &[(String, Vec<String>)]) -> Result<(), StoreError> {
        self.lock()?.peers = peers.to_vec();
        Ok(())
    }
    fn load_peers(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        Ok(self.lock()?.peers.clone())
    }
}
