//! Every version of one DID, and the rule that settles concurrent updates.
//!
//! Versions form a tree: each update or deactivation names the version it replaces. Two
//! operations naming the same version are concurrent (neither signer saw the other). Among
//! siblings the winner is, in order: a deactivation; the higher Lamport clock; the lower version
//! id. The current version is found by starting at the winning create and following winners to
//! a leaf. The rule reads only the set of operations, so every node that holds the same set
//! resolves the same document, whatever order the operations arrived in. Operations off the
//! winning chain are *superseded*: kept, resolvable by version id, and reported.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::id::VersionId;
use super::op::DidOp;
use crate::document::DidDocument;

/// One accepted operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    pub version: VersionId,
    /// Lamport clock of the carrying transaction.
    pub lc: u64,
    /// Signing time of the carrying transaction (Unix ms).
    pub sigt: u64,
    pub op: DidOp,
    /// The key that signed it: a DID URL, or `jwk` for the embedded inception key.
    pub signer: String,
}

impl OpRecord {
    pub fn document(&self) -> Option<&DidDocument> {
        self.op.document()
    }
}

/// `Less` when `a` beats `b` among siblings.
fn rank(a: &OpRecord, b: &OpRecord) -> Ordering {
    b.op.is_deactivate()
        .cmp(&a.op.is_deactivate())
        .then(b.lc.cmp(&a.lc))
        .then(a.version.cmp(&b.version))
}

/// All operations on one DID.
#[derive(Clone, Debug, Default)]
pub struct DidHistory {
    ops: HashMap<VersionId, OpRecord>,
    children: HashMap<Option<VersionId>, Vec<VersionId>>,
}

impl DidHistory {
    /// Adds an operation (idempotent).
    pub fn insert(&mut self, rec: OpRecord) {
        if self.ops.contains_key(&rec.version) {
            return;
        }
        self.children
            .entry(rec.op.previous())
            .or_default()
            .push(rec.version);
        self.ops.insert(rec.version, rec);
    }

    /// Removes an operation (a commit that did not happen).
    pub fn remove(&mut self, v: &VersionId) {
        if let Some(rec) = self.ops.remove(v) {
            if let Some(c) = self.children.get_mut(&rec.op.previous()) {
                c.retain(|x| x != v);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn get(&self, v: &VersionId) -> Option<&OpRecord> {
        self.ops.get(v)
    }

    /// Every operation, oldest first by `(lc, version)`.
    pub fn all(&self) -> Vec<&OpRecord> {
        let mut v: Vec<&OpRecord> = self.ops.values().collect();
        v.sort_by(|a, b| a.lc.cmp(&b.lc).then(a.version.cmp(&b.version)));
        v
    }

    /// `v` and the versions it descends from, back to the create.
    pub fn lineage(&self, v: &VersionId) -> HashSet<VersionId> {
        let mut out = HashSet::new();
        let mut cur = Some(*v);
        while let Some(c) = cur {
            if !out.insert(c) {
                break;
            }
            cur = self.ops.get(&c).and_then(|r| r.op.previous());
        }
        out
    }

    /// The winning chain (create first) among the operations `include` admits.
    pub fn chain_where(&self, include: &dyn Fn(&OpRecord) -> bool) -> Vec<&OpRecord> {
        let mut chain = Vec::new();
        let mut parent: Option<VersionId> = None;
        loop {
            let best = self
                .children
                .get(&parent)
                .into_iter()
                .flatten()
                .filter_map(|v| self.ops.get(v))
                .filter(|r| include(r))
                .min_by(|a, b| rank(a, b));
            match best {
                Some(r) => {
                    chain.push(r);
                    if r.op.is_deactivate() {
                        break;
                    }
                    parent = Some(r.version);
                }
                None => break,
            }
        }
        chain
    }

    /// The winning chain over everything known.
    pub fn chain(&self) -> Vec<&OpRecord> {
        self.chain_where(&|_| true)
    }

    /// Operations off the winning chain, oldest first.
    pub fn superseded(&self) -> Vec<&OpRecord> {
        let on: HashSet<VersionId> = self.chain().iter().map(|r| r.version).collect();
        self.all()
            .into_iter()
            .filter(|r| !on.contains(&r.version))
            .collect()
    }

    /// The version on the winning chain that was current at `ms` (by signing time).
    pub fn at_time(&self, ms: u64) -> Option<&OpRecord> {
        self.chain().into_iter().take_while(|r| r.sigt <= ms).last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::DidDocument;

    fn rec(v: u8, prev: Option<u8>, lc: u64, deactivate: bool) -> OpRecord {
        let document = DidDocument::new("did:knoop:x");
        let op = match (prev, deactivate) {
            (None, _) => DidOp::Create { document },
            (Some(p), false) => DidOp::Update {
                previous: VersionId([p; 32]),
                document,
            },
            (Some(p), true) => DidOp::Deactivate {
                did: "did:knoop:x".into(),
                previous: VersionId([p; 32]),
            },
        };
        OpRecord {
            version: VersionId([v; 32]),
            lc,
            sigt: lc * 1000,
            op,
            signer: "jwk".into(),
        }
    }

    fn versions(c: Vec<&OpRecord>) -> Vec<u8> {
        c.iter().map(|r| r.version.0[0]).collect()
    }

    #[test]
    fn the_fork_rule_ignores_arrival_order() {
        // 1 <- 2 <- {3 (lc 5), 4 (lc 7)} ; 3 <- 5
        let ops = [
            rec(1, None, 0, false),
            rec(2, Some(1), 1, false),
            rec(3, Some(2), 5, false),
            rec(4, Some(2), 7, false),
            rec(5, Some(3), 9, false),
        ];
        let mut orders = vec![ops.to_vec()];
        let mut rev = ops.to_vec();
        rev.reverse();
        orders.push(rev);
        orders.push(vec![
            ops[3].clone(),
            ops[0].clone(),
            ops[4].clone(),
            ops[2].clone(),
            ops[1].clone(),
        ]);
        for order in orders {
            let mut h = DidHistory::default();
            for r in order {
                h.insert(r);
            }
            assert_eq!(versions(h.chain()), vec![1, 2, 4]);
            assert_eq!(versions(h.superseded()), vec![3, 5]);
        }
    }

    #[test]
    fn deactivation_beats_a_concurrent_update_and_ties_go_to_the_lower_id() {
        let mut h = DidHistory::default();
        h.insert(rec(1, None, 0, false));
        h.insert(rec(9, Some(1), 4, false));
        h.insert(rec(8, Some(1), 4, false));
        assert_eq!(versions(h.chain()), vec![1, 8]);
        h.insert(rec(7, Some(1), 2, true));
        assert_eq!(versions(h.chain()), vec![1, 7]);
        assert_eq!(versions(h.superseded()), vec![8, 9]);
        h.remove(&VersionId([7; 32]));
        assert_eq!(versions(h.chain()), vec![1, 8]);
    }

    #[test]
    fn time_and_lineage() {
        let mut h = DidHistory::default();
        h.insert(rec(1, None, 0, false));
        h.insert(rec(2, Some(1), 1, false));
        h.insert(rec(3, Some(2), 2, false));
        assert_eq!(h.at_time(1500).map(|r| r.version.0[0]), Some(2));
        assert_eq!(h.at_time(0).map(|r| r.version.0[0]), Some(1));
        assert_eq!(h.lineage(&VersionId([3; 32])).len(), 3);
        let only_old = h.chain_where(&|r| r.lc < 2);
        assert_eq!(versions(only_old), vec![1, 2]);
    }
}
