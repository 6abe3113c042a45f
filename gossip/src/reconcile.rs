//! Anti-entropy set reconciliation: range-based set reconciliation (Negentropy protocol V1,
//! spec: `specs/sync.md`) over the set of transaction ids ordered by `(sigt, id)`.
//!
//! Sans-IO: an initiator [`Session`] turns replies into the next query plus the ids each side
//! lacks; a responder answers with [`respond`] and keeps no state between messages. Bandwidth is
//! proportional to the differences (plus a logarithmic number of fingerprints), and every message
//! is capped at [`FRAME_LIMIT`] bytes, so a large difference takes more rounds rather than one
//! huge message, and a growing log never stalls a round: each session runs over an immutable
//! [`Snapshot`].

use std::sync::Arc;

use negentropy::{Bound, Id, Item, Negentropy, NegentropyStorageBase, NegentropyStorageVector};

use crate::tx::{Hash32, TxId};

/// Largest reconciliation message either side produces, in bytes.
pub const FRAME_LIMIT: u64 = 256 * 1024;

/// A reconciliation failed (malformed or unexpected message).
#[derive(Debug, thiserror::Error)]
#[error("reconciliation: {0:?}")]
pub struct ReconcileError(pub negentropy::Error);

impl From<negentropy::Error> for ReconcileError {
    fn from(e: negentropy::Error) -> Self {
        ReconcileError(e)
    }
}

/// An immutable, sorted copy of the set (cheap to clone).
#[derive(Clone)]
pub struct Snapshot(Arc<NegentropyStorageVector>);

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::from_sorted(std::iter::empty())
    }
}

impl Snapshot {
    /// Builds a snapshot from `(sigt, id)` pairs.
    pub fn from_sorted(items: impl Iterator<Item = (u64, TxId)>) -> Self {
        let mut v = NegentropyStorageVector::new();
        for (t, id) in items {
            // Inserting into an unsealed vector cannot fail.
            let _ = v.insert(t, Id::from_byte_array(id.0));
        }
        let _ = v.seal();
        Snapshot(Arc::new(v))
    }
    pub fn len(&self) -> usize {
        self.0.size().unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl NegentropyStorageBase for Snapshot {
    fn size(&self) -> Result<usize, negentropy::Error> {
        self.0.size()
    }
    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        self.0.get_item(i)
    }
    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        self.0.iterate(begin, end, cb)
    }
    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        self.0.find_lower_bound(first, last, value)
    }
}

/// Answers one reconciliation query (the responder keeps no state).
pub fn respond(snapshot: &Snapshot, query: &[u8]) -> Result<Vec<u8>, ReconcileError> {
    let mut neg = Negentropy::borrowed(snapshot, FRAME_LIMIT)?;
    Ok(neg.reconcile(query)?)
}

/// The outcome of one round for the initiator.
#[derive(Debug, Default)]
pub struct Step {
    /// The next query to send, or `None` when the sets are reconciled.
    pub next: Option<Vec<u8>>,
    /// Ids the initiator holds and the responder lacks.
    pub have: Vec<TxId>,
    /// Ids the responder holds and the initiator lacks.
    pub need: Vec<TxId>,
}

/// The initiator side of one reconciliation session.
pub struct Session {
    neg: Negentropy<'static, Snapshot>,
    pub rounds: u32,
}

impl Session {
    /// Starts a session over `snapshot`; returns it with the first query.
    pub fn start(snapshot: Snapshot) -> Result<(Self, Vec<u8>), ReconcileError> {
        let mut neg = Negentropy::owned(snapshot, FRAME_LIMIT)?;
        let first = neg.initiate()?;
        Ok((Session { neg, rounds: 0 }, first))
    }

    /// Processes the responder's reply.
    pub fn step(&mut self, reply: &[u8]) -> Result<Step, ReconcileError> {
        self.rounds += 1;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = self.neg.reconcile_with_ids(reply, &mut have, &mut need)?;
        Ok(Step {
            next,
            have: have.into_iter().map(|i| Hash32(i.to_bytes())).collect(),
            need: need.into_iter().map(|i| Hash32(i.to_bytes())).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn id(rng: &mut StdRng) -> (u64, TxId) {
        (
            rng.gen_range(1_600_000_000_000..1_700_000_000_000u64),
            Hash32(rng.gen()),
        )
    }

    /// Runs a whole session in memory; returns (have, need, bytes exchanged, rounds).
    fn run(a: &[(u64, TxId)], b: &[(u64, TxId)]) -> (Vec<TxId>, Vec<TxId>, usize, u32) {
        let sa = Snapshot::from_sorted(a.iter().copied());
        let sb = Snapshot::from_sorted(b.iter().copied());
        let (mut s, mut q) = Session::start(sa).unwrap();
        let (mut have, mut need, mut bytes) = (Vec::new(), Vec::new(), 0);
        loop {
            bytes += q.len();
            let r = respond(&sb, &q).unwrap();
            bytes += r.len();
            let step = s.step(&r).unwrap();
            have.extend(step.have);
            need.extend(step.need);
            match step.next {
                Some(n) => q = n,
                None => break,
            }
        }
        have.sort();
        need.sort();
        (have, need, bytes, s.rounds)
    }

    #[test]
    fn finds_exactly_the_differences() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let common: Vec<(u64, TxId)> = (0..5_000).map(|_| id(&mut rng)).collect();
        let only_a: Vec<(u64, TxId)> = (0..37).map(|_| id(&mut rng)).collect();
        let only_b: Vec<(u64, TxId)> = (0..53).map(|_| id(&mut rng)).collect();
        let a: Vec<_> = common.iter().chain(&only_a).copied().collect();
        let b: Vec<_> = common.iter().chain(&only_b).copied().collect();
        let (have, need, _, _) = run(&a, &b);
        let mut want_have: Vec<TxId> = only_a.iter().map(|x| x.1).collect();
        let mut want_need: Vec<TxId> = only_b.iter().map(|x| x.1).collect();
        want_have.sort();
        want_need.sort();
        assert_eq!(have, want_have, "seed {seed}");
        assert_eq!(need, want_need, "seed {seed}");
    }

    #[test]
    fn bandwidth_follows_differences_not_set_size() {
        let mut rng = StdRng::seed_from_u64(7);
        let common: Vec<(u64, TxId)> = (0..100_000).map(|_| id(&mut rng)).collect();
        let mut b = common.clone();
        b.push(id(&mut rng));
        let (_, need, bytes, _) = run(&common, &b);
        assert_eq!(need.len(), 1);
        // 100,000 ids are 3.2 MB; one difference must cost a few kilobytes.
        assert!(bytes < 16 * 1024, "{bytes} bytes for one difference");
    }

    #[test]
    fn empty_side_learns_everything_in_bounded_frames() {
        let mut rng = StdRng::seed_from_u64(8);
        let b: Vec<(u64, TxId)> = (0..30_000).map(|_| id(&mut rng)).collect();
        let sa = Snapshot::default();
        let sb = Snapshot::from_sorted(b.iter().copied());
        let (mut s, mut q) = Session::start(sa).unwrap();
        let mut need = 0;
        loop {
            let r = respond(&sb, &q).unwrap();
            assert!(r.len() as u64 <= FRAME_LIMIT);
            let step = s.step(&r).unwrap();
            need += step.need.len();
            match step.next {
                Some(n) => q = n,
                None => break,
            }
        }
        assert_eq!(need, 30_000);
        assert!(s.rounds > 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let snap = Snapshot::default();
        assert!(respond(&snap, &[]).is_err());
        assert!(respond(&snap, &[0x50, 0x00]).is_err());
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..200 {
            let n = rng.gen_range(0..64);
            let mut junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            if !junk.is_empty() {
                junk[0] = 0x61;
            }
            let _ = respond(&snap, &junk);
        }
    }
}
