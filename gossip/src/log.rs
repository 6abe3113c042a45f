//! The log's ingest pipeline: dedupe, authorise, verify (in batches), resolve causal parents
//! (holding orphans, bounded), and commit in one atomic write. No IO of its own besides the
//! [`Store`]; the tokio service in [`crate::service`] drives it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use ed25519_dalek::VerifyingKey;

use crate::error::TxError;
use crate::reconcile::Snapshot;
use crate::store::{CommitBatch, Store, StoredTx};
use crate::tx::{now_ms, verify_batch, Transaction, TxId};

/// What an [`Authorizer`] knows about a transaction's signing key before its parents are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyLookup {
    /// The key to verify the signature with.
    Key(VerifyingKey),
    /// The key depends on state carried by one of the transaction's parents that is not stored
    /// yet (a DID version in the same batch, or still missing): ask again once it is placed.
    Deferred,
}

/// Read access to the causal graph as it stands during an ingest: stored transactions and those
/// placed earlier in the same batch.
pub trait CausalView {
    /// `(lc, prevs)` of a transaction, if held.
    fn node(&self, id: &TxId) -> Result<Option<(u64, Vec<TxId>)>, TxError>;
}

/// Decides who may sign what. The node supplies one backed by DID state; [`EmbeddedKeys`]
/// accepts the key embedded in the header.
///
/// The log calls, per transaction: [`Authorizer::signer_key`] before signature verification
/// (batched), then, once the transaction's parents are in place, [`Authorizer::admit`], which
/// may look at the causal past and records the transaction's effects provisionally. After the
/// batch's commit it calls [`Authorizer::committed`] or, if the commit failed,
/// [`Authorizer::rolled_back`].
pub trait Authorizer: Send + Sync + 'static {
    fn signer_key(&self, tx: &Transaction) -> Result<KeyLookup, TxError>;

    /// Final say on a transaction whose signature verified with `key` and whose parents are
    /// placed. Accepting records its effects (provisionally until the commit).
    fn admit(
        &self,
        _tx: &Transaction,
        _key: &VerifyingKey,
        _view: &dyn CausalView,
    ) -> Result<(), TxError> {
        Ok(())
    }

    /// Everything admitted since the last call is durable.
    fn committed(&self) {}

    /// The commit failed: forget everything admitted since the last [`Authorizer::committed`].
    fn rolled_back(&self) {}
}

/// Accepts transactions signed by the key embedded in their header (`jwk`); refuses `kid`.
///
/// Decompressing and checking an Ed25519 point costs about a third of a verification, and most
/// transactions come from few signers, so checked keys are remembered (bounded).
#[derive(Debug, Default)]
pub struct EmbeddedKeys {
    checked: std::sync::Mutex<HashMap<String, VerifyingKey>>,
}

/// Most keys [`EmbeddedKeys`] remembers before it starts over.
const EMBEDDED_KEY_CACHE: usize = 10_000;

impl Authorizer for EmbeddedKeys {
    fn signer_key(&self, tx: &Transaction) -> Result<KeyLookup, TxError> {
        self.embedded_key(tx).map(KeyLookup::Key)
    }
}

impl EmbeddedKeys {
    /// The checked key embedded in the header (`jwk`).
    pub fn embedded_key(&self, tx: &Transaction) -> Result<VerifyingKey, TxError> {
        let Some(jwk) = &tx.header().jwk else {
            return Err(TxError::Unauthorized(
                "this log accepts embedded keys (jwk) only".into(),
            ));
        };
        if let Ok(cache) = self.checked.lock() {
            if let Some(k) = cache.get(&jwk.x) {
                if jwk.kty == "OKP" && jwk.crv == "Ed25519" {
                    return Ok(*k);
                }
            }
        }
        let key = jwk.to_key()?;
        if let Ok(mut cache) = self.checked.lock() {
            if cache.len() >= EMBEDDED_KEY_CACHE {
                cache.clear();
            }
            cache.insert(jwk.x.clone(), key);
        }
        Ok(key)
    }
}

/// Limits of the ingest pipeline.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Most orphans (transactions whose parents are missing) held at once; the oldest is dropped
    /// beyond this (reconciliation brings it back later).
    pub max_pending: usize,
    /// How far in the future a signing time may lie.
    pub max_clock_skew_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_pending: 50_000,
            max_clock_skew_ms: 5 * 60 * 1000,
        }
    }
}

/// Where a batch of transactions came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local caller (RPC): orphans are refused, the write is durable before acknowledging.
    Local,
    /// A peer: orphans are held until their parents arrive.
    Peer,
}

/// What happened to one ingested batch.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// One result per input, in input order. `Err(MissingParents)` from a peer means "held".
    pub results: Vec<Result<TxId, TxError>>,
    /// Every transaction stored by this batch (inputs and released orphans) in storage order.
    pub stored: Vec<Arc<Transaction>>,
    /// Parents that neither the store nor the orphan pool holds: worth fetching.
    pub missing: Vec<TxId>,
}

/// The set of transaction ids held, ordered by `(sigt, id)`, shared with readers.
#[derive(Default)]
pub struct SetIndex {
    items: BTreeSet<(u64, TxId)>,
    version: u64,
    snapshot: Option<(u64, Snapshot)>,
    digest: Option<(u64, String)>,
}

impl SetIndex {
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    fn insert(&mut self, sigt: u64, id: TxId) {
        if self.items.insert((sigt, id)) {
            self.version += 1;
        }
    }
}

/// Read access to the set index from any thread.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<SetIndex>>);

impl SharedIndex {
    /// Whether the set holds transaction `id` signed at `sigt` (what the store holds: the index
    /// is the store's set, in memory).
    pub fn contains(&self, sigt: u64, id: &TxId) -> bool {
        self.0
            .read()
            .map(|g| g.items.contains(&(sigt, *id)))
            .unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.0.read().map(|g| g.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A sealed, immutable copy of the set for one reconciliation session, cached per version.
    pub fn snapshot(&self) -> Snapshot {
        if let Ok(g) = self.0.read() {
            if let Some((v, s)) = &g.snapshot {
                if *v == g.version {
                    return s.clone();
                }
            }
        }
        let Ok(mut g) = self.0.write() else {
            return Snapshot::default();
        };
        let snap = Snapshot::from_sorted(g.items.iter().copied());
        g.snapshot = Some((g.version, snap.clone()));
        snap
    }

    /// `"<count>-<hex sha256 of the ids in (sigt, id) order>"`: equal on two nodes exactly when
    /// they hold the same set (spec: `specs/transaction.md`, "Set digest").
    pub fn digest(&self) -> String {
        if let Ok(g) = self.0.read() {
            if let Some((v, d)) = &g.digest {
                if *v == g.version {
                    return d.clone();
                }
            }
        }
        let Ok(mut g) = self.0.write() else {
            return String::new();
        };
        let d = set_digest(g.items.iter().map(|(_, id)| id));
        g.digest = Some((g.version, d.clone()));
        d
    }
}

/// The set digest over ids given in `(sigt, id)` order.
pub fn set_digest<'a>(ids: impl Iterator<Item = &'a TxId>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut n = 0u64;
    for id in ids {
        h.update(id.0);
        n += 1;
    }
    format!("{n}-{}", hex::encode(h.finalize()))
}

/// Orphans waiting for parents.
#[derive(Default)]
struct Pending {
    /// Orphan, the key its signature verified with (`None`: not verified yet, key deferred),
    /// and the parents it still misses.
    txs: HashMap<TxId, (Transaction, Option<VerifyingKey>, HashSet<TxId>)>,
    waiting: HashMap<TxId, Vec<TxId>>,
    order: VecDeque<TxId>,
}

impl Pending {
    fn insert(
        &mut self,
        tx: Transaction,
        key: Option<VerifyingKey>,
        missing: HashSet<TxId>,
        max: usize,
    ) {
        let id = tx.id();
        for m in &missing {
            self.waiting.entry(*m).or_default().push(id);
        }
        self.txs.insert(id, (tx, key, missing));
        self.order.push_back(id);
        while self.txs.len() > max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, _, missing)) = self.txs.remove(&old) {
                tracing::debug!(tx = ?old, "orphan pool full: dropped oldest orphan");
                for m in missing {
                    if let Some(w) = self.waiting.get_mut(&m) {
                        w.retain(|x| *x != old);
                        if w.is_empty() {
                            self.waiting.remove(&m);
                        }
                    }
                }
            }
        }
        if self.order.len() > 2 * max.max(16) {
            let txs = &self.txs;
            self.order.retain(|id| txs.contains_key(id));
        }
    }

    /// `parent` arrived: returns the orphans that now have all their parents.
    fn release(&mut self, parent: &TxId) -> Vec<(Transaction, Option<VerifyingKey>)> {
        let Some(children) = self.waiting.remove(parent) else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        for c in children {
            let done = match self.txs.get_mut(&c) {
                Some((_, _, missing)) => {
                    missing.remove(parent);
                    missing.is_empty()
                }
                None => false,
            };
            if done {
                if let Some((tx, key, _)) = self.txs.remove(&c) {
                    ready.push((tx, key));
                }
            }
        }
        ready
    }
}

/// Stored transactions' Lamport clocks and parents, as the causal checks read them: a stored
/// transaction never changes, so a copy is always right. Bounded (emptied when full); it saves
/// a store read and an envelope parse per check of a key's DID version or a parent in an
/// earlier group (a round trip each on a database store).
#[derive(Default)]
struct Ancestry(Mutex<HashMap<TxId, (u64, Vec<TxId>)>>);

/// Most transactions [`Ancestry`] remembers.
const ANCESTRY_CAP: usize = 16_384;

impl Ancestry {
    fn node<S: Store + ?Sized>(
        &self,
        store: &S,
        id: &TxId,
    ) -> Result<Option<(u64, Vec<TxId>)>, TxError> {
        if let Some(n) = self.0.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(Some(n));
        }
        let Some(t) = store.get_tx(id)? else {
            return Ok(None);
        };
        let tx = Transaction::parse(&t.envelope, None)?;
        let node = (t.lc, tx.header().prevs.clone());
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= ANCESTRY_CAP {
                m.clear();
            }
            m.insert(*id, node.clone());
        }
        Ok(Some(node))
    }
}

/// The transaction log: one writer (this struct, `&mut self`), many readers (through
/// [`SharedIndex`] and the store).
pub struct Log<S: Store + ?Sized> {
    store: Arc<S>,
    ancestry: Ancestry,
    auth: Arc<dyn Authorizer>,
    config: LogConfig,
    index: SharedIndex,
    heads: HashMap<TxId, u64>,
    pending: Pending,
    next_seq: u64,
}

impl<S: Store + ?Sized> Log<S> {
    /// Opens the log over `store`, reading the compact set index (not replaying the log).
    pub fn open(
        store: Arc<S>,
        auth: Arc<dyn Authorizer>,
        config: LogConfig,
    ) -> Result<Self, TxError> {
        let mut set = SetIndex::default();
        for (sigt, id) in store.load_set()? {
            set.items.insert((sigt, id));
        }
        set.version = set.items.len() as u64;
        let mut heads = HashMap::new();
        for id in store.load_heads()? {
            if let Some(t) = store.get_tx(&id)? {
                heads.insert(id, t.lc);
            }
        }
        let next_seq = store.last_seq()? + 1;
        Ok(Log {
            store,
            ancestry: Ancestry::default(),
            auth,
            config,
            index: SharedIndex(Arc::new(RwLock::new(set))),
            heads,
            pending: Pending::default(),
            next_seq,
        })
    }

    pub fn index(&self) -> SharedIndex {
        self.index.clone()
    }
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }
    pub fn pending_len(&self) -> usize {
        self.pending.txs.len()
    }

    /// The current heads as `(id, lc)`: at most `max`, highest clocks first. New local
    /// transactions name these as parents.
    pub fn heads(&self, max: usize) -> Vec<(TxId, u64)> {
        let mut h: Vec<(TxId, u64)> = self.heads.iter().map(|(k, v)| (*k, *v)).collect();
        h.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        h.truncate(max);
        h
    }

    /// Validates and stores a batch. Everything accepted is written in one atomic commit.
    pub fn ingest(&mut self, txs: Vec<Transaction>, source: Source) -> IngestReport {
        self.ingest_mixed(txs.into_iter().map(|t| (t, source)).collect())
    }

    /// Like [`Log::ingest`], with a source per transaction (the service merges jobs).
    pub fn ingest_mixed(&mut self, txs: Vec<(Transaction, Source)>) -> IngestReport {
        let now = now_ms();
        let durable = txs.iter().any(|(_, s)| *s == Source::Local);
        let mut results: Vec<Result<TxId, TxError>> = Vec::with_capacity(txs.len());
        let mut candidates: Vec<(usize, Transaction, VerifyingKey)> = Vec::with_capacity(txs.len());
        let mut deferred: Vec<(usize, Transaction)> = Vec::new();
        let mut sources: Vec<Source> = Vec::with_capacity(txs.len());
        let mut seen = HashSet::with_capacity(txs.len());
        for (i, (tx, source)) in txs.into_iter().enumerate() {
            sources.push(source);
            results.push(Err(TxError::Duplicate));
            let id = tx.id();
            let check = (|| {
                let sigt = tx.header().sigt;
                // The in-memory set answers for the store: no read per transaction (a round
                // trip each on a database store).
                if !seen.insert(id)
                    || self.pending.txs.contains_key(&id)
                    || self.index.contains(sigt, &id)
                {
                    return Err(TxError::Duplicate);
                }
                if sigt > now + self.config.max_clock_skew_ms {
                    return Err(TxError::FromTheFuture {
                        ahead_ms: sigt - now,
                    });
                }
                self.auth.signer_key(&tx)
            })();
            match check {
                Ok(KeyLookup::Key(key)) => candidates.push((i, tx, key)),
                Ok(KeyLookup::Deferred) => deferred.push((i, tx)),
                Err(e) => results[i] = Err(e),
            }
        }

        let verdicts = {
            let pairs: Vec<(&Transaction, VerifyingKey)> =
                candidates.iter().map(|(_, t, k)| (t, *k)).collect();
            verify_batch(&pairs)
        };
        let mut verified: Vec<(usize, Transaction, Option<VerifyingKey>)> =
            Vec::with_capacity(candidates.len() + deferred.len());
        for ((i, tx, key), v) in candidates.into_iter().zip(verdicts) {
            match v {
                Ok(()) => verified.push((i, tx, Some(key))),
                Err(e) => results[i] = Err(e),
            }
        }
        verified.extend(deferred.into_iter().map(|(i, t)| (i, t, None)));
        // Parents inside the same batch must be placed first.
        verified.sort_by_key(|(_, t, _)| t.header().lc);

        let mut batch = CommitBatch {
            durable,
            ..Default::default()
        };
        let mut placed: HashMap<TxId, (u64, Vec<TxId>)> = HashMap::new();
        let mut stored: Vec<Arc<Transaction>> = Vec::new();
        let mut missing_out: Vec<TxId> = Vec::new();
        let mut queue: VecDeque<(Option<usize>, Transaction, Option<VerifyingKey>)> = verified
            .into_iter()
            .map(|(i, t, k)| (Some(i), t, k))
            .collect();

        while let Some((slot, tx, key)) = queue.pop_front() {
            let outcome = self
                .place(&tx, &placed)
                .and_then(|()| self.admit(&tx, key, &placed));
            match outcome {
                Ok(()) => {
                    let id = tx.id();
                    placed.insert(id, (tx.header().lc, tx.header().prevs.clone()));
                    self.stage(&mut batch, &tx);
                    for (child, child_key) in self.pending.release(&id) {
                        queue.push_back((None, child, child_key));
                    }
                    if let Some(i) = slot {
                        results[i] = Ok(id);
                    }
                    stored.push(Arc::new(tx));
                }
                Err(TxError::MissingParents(missing))
                    if slot.is_none_or(|i| sources[i] == Source::Peer) =>
                {
                    for m in &missing {
                        if !self.pending.txs.contains_key(m) {
                            missing_out.push(*m);
                        }
                    }
                    if let Some(i) = slot {
                        results[i] = Err(TxError::MissingParents(missing.clone()));
                    }
                    self.pending.insert(
                        tx,
                        key,
                        missing.into_iter().collect(),
                        self.config.max_pending,
                    );
                }
                Err(e) => {
                    if slot.is_none() {
                        tracing::debug!(tx = ?tx.id(), error = %e, "released orphan refused");
                    }
                    if let Some(i) = slot {
                        results[i] = Err(e);
                    }
                }
            }
        }

        missing_out.sort_unstable();
        missing_out.dedup();
        if batch.txs.is_empty() {
            self.auth.committed();
            return IngestReport {
                results,
                stored,
                missing: missing_out,
            };
        }
        let first_seq = batch.txs[0].1.seq;
        if let Err(e) = self.store.commit(batch) {
            tracing::error!(error = %e, "commit failed; batch not stored");
            self.auth.rolled_back();
            self.next_seq = first_seq;
            let err = TxError::from(e);
            let stored_ids: HashSet<TxId> = stored.iter().map(|t| t.id()).collect();
            for r in results.iter_mut() {
                if matches!(r, Ok(id) if stored_ids.contains(id)) {
                    *r = Err(err.clone());
                }
            }
            self.reload_heads();
            return IngestReport {
                results,
                stored: Vec::new(),
                missing: missing_out,
            };
        }
        self.auth.committed();
        if let Ok(mut idx) = self.index.0.write() {
            for t in &stored {
                idx.insert(t.header().sigt, t.id());
            }
        }
        IngestReport {
            results,
            stored,
            missing: missing_out,
        }
    }

    /// Verifies a transaction whose key was deferred, then lets the authorizer decide with the
    /// causal past in view. Runs once the parents are placed.
    fn admit(
        &self,
        tx: &Transaction,
        key: Option<VerifyingKey>,
        placed: &HashMap<TxId, (u64, Vec<TxId>)>,
    ) -> Result<(), TxError> {
        let key = match key {
            Some(k) => k,
            None => match self.auth.signer_key(tx)? {
                KeyLookup::Key(k) => {
                    tx.verify_signature(&k)?;
                    k
                }
                KeyLookup::Deferred => {
                    return Err(TxError::Unauthorized(
                        "the signing key is not known even with all parents in place".into(),
                    ))
                }
            },
        };
        let view = BatchView {
            store: self.store.as_ref(),
            ancestry: &self.ancestry,
            placed,
        };
        self.auth.admit(tx, &key, &view)
    }

    /// Checks causal parents and the Lamport clock of a verified transaction.
    fn place(
        &self,
        tx: &Transaction,
        placed: &HashMap<TxId, (u64, Vec<TxId>)>,
    ) -> Result<(), TxError> {
        let mut missing = Vec::new();
        let mut max_lc: Option<u64> = None;
        for p in &tx.header().prevs {
            let lc = match placed.get(p) {
                Some((lc, _)) => Some(*lc),
                None => self
                    .ancestry
                    .node(self.store.as_ref(), p)?
                    .map(|(lc, _)| lc),
            };
            match lc {
                Some(lc) => max_lc = Some(max_lc.map_or(lc, |m: u64| m.max(lc))),
                None => missing.push(*p),
            }
        }
        if !missing.is_empty() {
            return Err(TxError::MissingParents(missing));
        }
        let expected = max_lc.map_or(0, |m| m + 1);
        if tx.header().lc != expected {
            return Err(TxError::BadClock {
                got: tx.header().lc,
                expected,
            });
        }
        Ok(())
    }

    fn stage(&mut self, batch: &mut CommitBatch, tx: &Transaction) {
        let id = tx.id();
        let h = tx.header();
        batch.txs.push((
            id,
            StoredTx {
                seq: self.next_seq,
                sigt: h.sigt,
                lc: h.lc,
                envelope: tx.envelope().to_owned(),
            },
        ));
        self.next_seq += 1;
        if let Some(p) = tx.payload() {
            batch.payloads.push((tx.payload_hash(), p.to_vec()));
        }
        for p in &h.prevs {
            if self.heads.remove(p).is_some() {
                batch.heads_removed.push(*p);
            }
        }
        self.heads.insert(id, h.lc);
        batch.heads_added.push(id);
        batch.by_type.push((h.cty.clone(), self.next_seq - 1, id));
    }

    fn reload_heads(&mut self) {
        self.heads.clear();
        if let Ok(ids) = self.store.load_heads() {
            for id in ids {
                if let Ok(Some(t)) = self.store.get_tx(&id) {
                    self.heads.insert(id, t.lc);
                }
            }
        }
    }

    /// Reads a stored transaction with its payload (if held).
    pub fn get(&self, id: &TxId) -> Result<Option<TxWithPayload>, TxError> {
        read_tx(self.store.as_ref(), id)
    }
}

/// The causal graph during an ingest: what this batch placed, then the store.
struct BatchView<'a, S: Store + ?Sized> {
    store: &'a S,
    ancestry: &'a Ancestry,
    placed: &'a HashMap<TxId, (u64, Vec<TxId>)>,
}

impl<S: Store + ?Sized> CausalView for BatchView<'_, S> {
    fn node(&self, id: &TxId) -> Result<Option<(u64, Vec<TxId>)>, TxError> {
        if let Some(n) = self.placed.get(id) {
            return Ok(Some(n.clone()));
        }
        self.ancestry.node(self.store, id)
    }
}

/// A stored transaction with its content, when held.
pub type TxWithPayload = (StoredTx, Option<Vec<u8>>);

/// Reads a stored transaction and its payload from any store handle.
pub fn read_tx<S: Store + ?Sized>(store: &S, id: &TxId) -> Result<Option<TxWithPayload>, TxError> {
    let Some(t) = store.get_tx(id)? else {
        return Ok(None);
    };
    let tx = Transaction::parse(&t.envelope, None)?;
    let payload = store.get_payload(&tx.payload_hash())?;
    Ok(Some((t, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use crate::tx::TxBuilder;
    use ed25519_dalek::SigningKey;

    fn log() -> Log<MemStore> {
        Log::open(
            Arc::new(MemStore::default()),
            Arc::new(EmbeddedKeys::default()),
            LogConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn orphans_wait_for_parents_then_all_land() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let a = TxBuilder::new("t/a").sign(&k, vec![1]).unwrap();
        let b = TxBuilder::new("t/a")
            .prevs([(a.id(), 0)])
            .sign(&k, vec![2])
            .unwrap();
        let c = TxBuilder::new("t/a")
            .prevs([(b.id(), 1)])
            .sign(&k, vec![3])
            .unwrap();
        let mut l = log();
        let r = l.ingest(vec![c.clone()], Source::Peer);
        assert_eq!(r.results[0], Err(TxError::MissingParents(vec![b.id()])));
        assert_eq!(r.missing, vec![b.id()]);
        let r = l.ingest(vec![b.clone()], Source::Peer);
        assert_eq!(r.missing, vec![a.id()]);
        assert_eq!(l.pending_len(), 2);
        let r = l.ingest(vec![a.clone()], Source::Peer);
        assert_eq!(r.stored.len(), 3);
        assert_eq!(l.pending_len(), 0);
        assert_eq!(l.index().len(), 3);
        assert_eq!(l.heads(16), vec![(c.id(), 2)]);
    }

    #[test]
    fn local_orphans_and_duplicates_are_refused() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let a = TxBuilder::new("t/a").sign(&k, vec![1]).unwrap();
        let b = TxBuilder::new("t/a")
            .prevs([(a.id(), 0)])
            .sign(&k, vec![2])
            .unwrap();
        let mut l = log();
        let r = l.ingest(vec![b.clone()], Source::Local);
        assert!(matches!(r.results[0], Err(TxError::MissingParents(_))));
        assert_eq!(l.pending_len(), 0);
        let r = l.ingest(vec![a.clone(), a.clone(), b.clone()], Source::Local);
        assert_eq!(r.results[0], Ok(a.id()));
        assert_eq!(r.results[1], Err(TxError::Duplicate));
        assert_eq!(r.results[2], Ok(b.id()));
        let r = l.ingest(vec![a], Source::Local);
        assert_eq!(r.results[0], Err(TxError::Duplicate));
    }

    #[test]
    fn wrong_clock_and_future_are_refused() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let a = TxBuilder::new("t/a").sign(&k, vec![1]).unwrap();
        let b = TxBuilder::new("t/a")
            .prevs([(a.id(), 5)])
            .sign(&k, vec![2])
            .unwrap();
        let f = TxBuilder::new("t/a")
            .sigt(now_ms() + 3_600_000)
            .sign(&k, vec![3])
            .unwrap();
        let mut l = log();
        let r = l.ingest(vec![a, b, f], Source::Local);
        assert_eq!(
            r.results[1],
            Err(TxError::BadClock {
                got: 6,
                expected: 1
            })
        );
        assert!(matches!(r.results[2], Err(TxError::FromTheFuture { .. })));
    }

    #[test]
    fn digest_depends_on_the_set_only() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let txs: Vec<Transaction> = (0..20u8)
            .map(|i| TxBuilder::new("t/a").sign(&k, vec![i]).unwrap())
            .collect();
        let (mut l1, mut l2) = (log(), log());
        l1.ingest(txs.clone(), Source::Peer);
        let mut rev = txs.clone();
        rev.reverse();
        for t in rev {
            l2.ingest(vec![t], Source::Peer);
        }
        assert_eq!(l1.index().digest(), l2.index().digest());
        let extra = TxBuilder::new("t/a").sign(&k, vec![99]).unwrap();
        l2.ingest(vec![extra], Source::Peer);
        assert_ne!(l1.index().digest(), l2.index().digest());
    }
}
