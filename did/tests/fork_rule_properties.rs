//! Property tests of the fork rule (`specs/did-knoop.md`, `did/src/knoop/history.rs`): for any
//! tree of updates and deactivations of one DID, every arrival order gives the same current
//! chain and the same superseded set, and the chain is a path from the create that follows
//! the rule's winners.

use std::collections::BTreeSet;

use knoop_did::document::DidDocument;
use knoop_did::knoop::history::{DidHistory, OpRecord};
use knoop_did::knoop::id::VersionId;
use knoop_did::knoop::op::DidOp;
use proptest::prelude::*;
use proptest::sample::Index;

/// One generated operation: which earlier operation it follows, its Lamport clock (ties on
/// purpose), whether it deactivates, and a byte that orders its version id among siblings.
type Spec = (Index, u64, bool, u8);

/// The operations of a random history: a create, then operations each naming an earlier
/// operation that is not a deactivation.
fn build(specs: &[Spec]) -> Vec<OpRecord> {
    let version = |i: usize, salt: u8| {
        let mut v = [0u8; 32];
        v[0] = salt;
        v[1..9].copy_from_slice(&(i as u64).to_be_bytes());
        VersionId(v)
    };
    let document = DidDocument::new("did:knoop:x");
    let mut ops = vec![OpRecord {
        version: version(0, 0),
        lc: 0,
        sigt: 0,
        op: DidOp::Create {
            document: document.clone(),
        },
        signer: "jwk".into(),
    }];
    for (i, (parent, lc, deactivate, salt)) in specs.iter().enumerate() {
        let open: Vec<&OpRecord> = ops.iter().filter(|r| !r.op.is_deactivate()).collect();
        let previous = open[parent.index(open.len())].version;
        let op = if *deactivate {
            DidOp::Deactivate {
                did: "did:knoop:x".into(),
                previous,
            }
        } else {
            DidOp::Update {
                previous,
                document: document.clone(),
            }
        };
        ops.push(OpRecord {
            version: version(i + 1, *salt),
            lc: *lc,
            sigt: *lc * 1000,
            op,
            signer: "jwk".into(),
        });
    }
    ops
}

fn resolve(ops: &[OpRecord]) -> (Vec<VersionId>, BTreeSet<VersionId>) {
    let mut h = DidHistory::default();
    for r in ops {
        h.insert(r.clone());
    }
    (
        h.chain().iter().map(|r| r.version).collect(),
        h.superseded().iter().map(|r| r.version).collect(),
    )
}

fn histories() -> impl Strategy<Value = Vec<OpRecord>> {
    proptest::collection::vec(
        (
            any::<Index>(),
            0u64..6,
            proptest::bool::weighted(0.15),
            any::<u8>(),
        ),
        0..24,
    )
    .prop_map(|specs| build(&specs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_arrival_order_resolves_the_same_document(
        (ops, shuffled) in histories().prop_flat_map(|ops| {
            let shuffled = Just(ops.clone()).prop_shuffle();
            (Just(ops), shuffled)
        })
    ) {
        prop_assert_eq!(resolve(&ops), resolve(&shuffled));
    }

    #[test]
    fn the_chain_is_a_path_of_winners_and_the_rest_is_superseded(ops in histories()) {
        let (chain, superseded) = resolve(&ops);
        let by_version = |v: &VersionId| ops.iter().find(|r| r.version == *v);
        // It starts at the create and each link names the one before it.
        prop_assert_eq!(chain.first(), Some(&ops[0].version));
        for pair in chain.windows(2) {
            let next = by_version(&pair[1]).map(|r| r.op.previous());
            prop_assert_eq!(next, Some(Some(pair[0])));
        }
        // Each link beats its siblings: a deactivation first, then the higher clock, then
        // the lower version id.
        for pair in chain.windows(2) {
            let winner = by_version(&pair[1]).unwrap();
            for sibling in ops.iter().filter(|r| r.op.previous() == Some(pair[0])) {
                let key = |r: &OpRecord| (!r.op.is_deactivate(), std::cmp::Reverse(r.lc), r.version);
                prop_assert!(key(winner) <= key(sibling));
            }
        }
        // It ends at a leaf: nothing follows the last version.
        let last = *chain.last().unwrap();
        prop_assert!(!ops.iter().any(|r| r.op.previous() == Some(last)));
        // Chain and superseded split the operations.
        let all: BTreeSet<VersionId> = ops.iter().map(|r| r.version).collect();
        let on: BTreeSet<VersionId> = chain.iter().copied().collect();
        prop_assert!(on.is_disjoint(&superseded));
        prop_assert_eq!(on.union(&superseded).copied().collect::<BTreeSet<_>>(), all);
    }
}
