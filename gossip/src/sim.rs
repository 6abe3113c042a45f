//! An in-memory, seeded simulation of many logs reconciling with each other, with no sockets
//! and no clock: the protocol core ([`Log`], [`Session`], [`respond`]) exactly as the driver uses
//! it. Used by tests and benchmarks to check convergence deterministically.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::log::{read_tx, EmbeddedKeys, Log, LogConfig, Source};
use crate::reconcile::{respond, Session};
use crate::store::MemStore;
use crate::tx::{Transaction, TxId};

/// A simulated network of logs.
pub struct Sim {
    pub nodes: Vec<Log<MemStore>>,
    pub rng: StdRng,
    /// Reconciliation bytes exchanged so far (queries + replies + fetched ids).
    pub bytes: usize,
}

impl Sim {
    pub fn new(n: usize, seed: u64) -> Self {
        let nodes = (0..n)
            .map(|_| {
                Log::open(
                    Arc::new(MemStore::default()),
                    Arc::new(EmbeddedKeys::default()),
                    LogConfig::default(),
                )
                .expect("memstore opens")
            })
            .collect();
        Sim {
            nodes,
            rng: StdRng::seed_from_u64(seed),
            bytes: 0,
        }
    }

    /// One full reconciliation of node `a` (initiator) with node `b`, then `a` fetches what it
    /// lacks. Returns the number of ids `a` fetched.
    pub fn reconcile(&mut self, a: usize, b: usize) -> usize {
        let (mut session, mut q) = match Session::start(self.nodes[a].index().snapshot()) {
            Ok(s) => s,
            Err(_) => return 0,
        };
        let snap_b = self.nodes[b].index().snapshot();
        let mut need: Vec<TxId> = Vec::new();
        loop {
            self.bytes += q.len();
            let Ok(r) = respond(&snap_b, &q) else {
                return 0;
            };
            self.bytes += r.len();
            let Ok(step) = session.step(&r) else { return 0 };
            need.extend(step.need);
            match step.next {
                Some(n) => q = n,
                None => break,
            }
        }
        self.bytes += need.len() * 32;
        let txs: Vec<Transaction> = need
            .iter()
            .filter_map(|id| {
                let (st, payload) = read_tx(self.nodes[b].store().as_ref(), id).ok()??;
                Transaction::parse(&st.envelope, payload).ok()
            })
            .collect();
        let n = txs.len();
        self.nodes[a].ingest(txs, Source::Peer);
        n
    }

    /// Random pairwise rounds among `members` until all hold the same set or `max_rounds`.
    /// Returns the number of rounds taken, or `None` if they did not converge.
    pub fn converge(&mut self, members: &[usize], max_rounds: usize) -> Option<usize> {
        for round in 0..max_rounds {
            if self.converged(members) {
                return Some(round);
            }
            for &a in members {
                let b = members[self.rng.gen_range(0..members.len())];
                if a != b {
                    self.reconcile(a, b);
                }
            }
        }
        self.converged(members).then_some(max_rounds)
    }

    pub fn converged(&self, members: &[usize]) -> bool {
        let d = self.nodes[members[0]].index().digest();
        members.iter().all(|&m| self.nodes[m].index().digest() == d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::TxBuilder;
    use ed25519_dalek::SigningKey;

    fn publish(sim: &mut Sim, node: usize, key: &SigningKey, n: usize) {
        for _ in 0..n {
            let heads = sim.nodes[node].heads(crate::tx::MAX_PREVS);
            let payload: [u8; 16] = sim.rng.gen();
            let tx = TxBuilder::new("test/sim")
                .prevs(heads)
                .sign(key, payload.to_vec())
                .expect("sign");
            let r = sim.nodes[node].ingest(vec![tx], Source::Local);
            assert!(r.results[0].is_ok(), "{:?}", r.results[0]);
        }
    }

    #[test]
    fn partitioned_network_converges_after_healing() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut sim = Sim::new(6, seed);
        let key = SigningKey::from_bytes(&[5; 32]);
        for i in 0..6 {
            publish(&mut sim, i, &key, 30);
        }
        assert!(
            sim.converge(&[0, 1, 2, 3, 4, 5], 50).is_some(),
            "seed {seed}"
        );
        // Partition {0,1,2} | {3,4,5}; both sides keep writing on top of their heads.
        for i in 0..6 {
            publish(&mut sim, i, &key, 20);
        }
        assert!(sim.converge(&[0, 1, 2], 50).is_some(), "seed {seed}");
        assert!(sim.converge(&[3, 4, 5], 50).is_some(), "seed {seed}");
        assert!(!sim.converged(&[0, 3]));
        assert!(
            sim.converge(&[0, 1, 2, 3, 4, 5], 50).is_some(),
            "seed {seed}"
        );
        assert_eq!(sim.nodes[4].index().len(), 6 * 50);
    }

    #[test]
    fn late_joiner_catches_up_with_little_overhead() {
        let mut sim = Sim::new(2, 11);
        let key = SigningKey::from_bytes(&[6; 32]);
        publish(&mut sim, 0, &key, 2_000);
        let fetched = sim.reconcile(1, 0);
        assert_eq!(fetched, 2_000);
        assert!(sim.converged(&[0, 1]));
        // Ids are named once each plus a few fingerprints: well under 2x the id bytes.
        assert!(sim.bytes < 2_000 * 32 * 2 + 4096, "{} bytes", sim.bytes);
    }
}
