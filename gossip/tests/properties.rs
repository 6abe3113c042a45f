//! Property tests of the sync protocol's sans-IO parts (`specs/sync.md`): reconciliation of any
//! two sets finds exactly their differences (so both sides end with the union), no message
//! exceeds the frame limit, a responder never panics on arbitrary bytes, and every wire message
//! decodes to what was encoded while arbitrary bytes decode to an error, never a panic.

use std::collections::BTreeSet;

use knoop_gossip::reconcile::{respond, Session, Snapshot, FRAME_LIMIT};
use knoop_gossip::wire::{
    BlobRequest, BlobResponse, PeerState, StateQuery, SyncRequest, SyncResponse, WireTx,
};
use knoop_gossip::{Hash32, TxId};
use proptest::prelude::*;

/// A set as the protocol orders it: `(sigt, id)` items, sorted.
type Items = Vec<(u64, TxId)>;

/// `(sigt, id)` items, sorted as the protocol orders them.
fn sorted(items: impl Iterator<Item = (u64, TxId)>) -> Items {
    let mut v: Vec<_> = items.collect();
    v.sort();
    v.dedup();
    v
}

/// Runs a whole session in memory: (have, need, largest message).
fn reconcile(a: &[(u64, TxId)], b: &[(u64, TxId)]) -> (BTreeSet<TxId>, BTreeSet<TxId>, usize) {
    let sa = Snapshot::from_sorted(a.iter().copied());
    let sb = Snapshot::from_sorted(b.iter().copied());
    let (mut session, mut query) = Session::start(sa).expect("a session starts");
    let (mut have, mut need, mut largest) = (BTreeSet::new(), BTreeSet::new(), 0);
    loop {
        largest = largest.max(query.len());
        let reply = respond(&sb, &query).expect("the responder answers");
        largest = largest.max(reply.len());
        let step = session
            .step(&reply)
            .expect("the initiator reads the answer");
        have.extend(step.have);
        need.extend(step.need);
        match step.next {
            Some(q) => query = q,
            None => return (have, need, largest),
        }
    }
}

/// Two sets drawn from one pool, so that they share items.
fn two_sets() -> impl Strategy<Value = (Items, Items)> {
    proptest::collection::vec(
        (0u64..50, any::<[u8; 32]>(), any::<bool>(), any::<bool>()),
        0..400,
    )
    .prop_map(|pool| {
        let a = sorted(pool.iter().filter(|p| p.2).map(|p| (p.0, Hash32(p.1))));
        let b = sorted(pool.iter().filter(|p| p.3).map(|p| (p.0, Hash32(p.1))));
        (a, b)
    })
}

fn ids() -> impl Strategy<Value = Vec<TxId>> {
    proptest::collection::vec(any::<[u8; 32]>().prop_map(Hash32), 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reconciliation_finds_exactly_the_differences((a, b) in two_sets()) {
        let (have, need, largest) = reconcile(&a, &b);
        let ids = |s: &[(u64, TxId)]| s.iter().map(|x| x.1).collect::<BTreeSet<_>>();
        let (sa, sb) = (ids(&a), ids(&b));
        prop_assert_eq!(&have, &sa.difference(&sb).copied().collect());
        prop_assert_eq!(&need, &sb.difference(&sa).copied().collect());
        // Both sides then hold the union.
        let a_after: BTreeSet<_> = sa.union(&need).copied().collect();
        let b_after: BTreeSet<_> = sb.union(&have).copied().collect();
        prop_assert_eq!(a_after, b_after);
        prop_assert!(largest as u64 <= FRAME_LIMIT);
    }

    #[test]
    fn a_responder_never_panics_on_arbitrary_bytes(
        query in proptest::collection::vec(any::<u8>(), 0..512),
        (a, _) in two_sets(),
    ) {
        let snapshot = Snapshot::from_sorted(a.into_iter());
        let _ = respond(&snapshot, &query);
    }

    #[test]
    fn sync_messages_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ids in ids(),
        envelope in "[A-Za-z0-9_.-]{0,200}",
        payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        reason in "\\PC{0,40}",
        time_ms in any::<u64>(),
    ) {
        for req in [
            SyncRequest::Reconcile(bytes.clone()),
            SyncRequest::Fetch(ids.clone()),
            SyncRequest::State(StateQuery { time_ms }),
        ] {
            let enc = cbor4ii::serde::to_vec(Vec::new(), &req).unwrap();
            prop_assert_eq!(cbor4ii::serde::from_slice::<SyncRequest>(&enc).unwrap(), req);
        }
        let tx = WireTx { envelope: envelope.clone(), payload: payload.clone() };
        prop_assert_eq!(WireTx::decode(&tx.encode()).unwrap(), tx.clone());
        for resp in [
            SyncResponse::Reconcile(bytes.clone()),
            SyncResponse::Txs(vec![tx.clone(), tx]),
            SyncResponse::Refused(reason.clone()),
            SyncResponse::State(PeerState { time_ms, digest: reason.clone() }),
        ] {
            let enc = cbor4ii::serde::to_vec(Vec::new(), &resp).unwrap();
            prop_assert_eq!(cbor4ii::serde::from_slice::<SyncResponse>(&enc).unwrap(), resp);
        }
        let blob = BlobRequest { tx: bytes.clone(), token: bytes.iter().rev().copied().collect() };
        let enc = cbor4ii::serde::to_vec(Vec::new(), &blob).unwrap();
        prop_assert_eq!(cbor4ii::serde::from_slice::<BlobRequest>(&enc).unwrap(), blob);
        for answer in [BlobResponse::Blob(bytes), BlobResponse::Miss(None), BlobResponse::Refused(reason)] {
            let enc = cbor4ii::serde::to_vec(Vec::new(), &answer).unwrap();
            prop_assert_eq!(cbor4ii::serde::from_slice::<BlobResponse>(&enc).unwrap(), answer);
        }
    }

    #[test]
    fn arbitrary_bytes_are_no_message(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = WireTx::decode(&bytes);
        let _ = cbor4ii::serde::from_slice::<SyncRequest>(&bytes);
        let _ = cbor4ii::serde::from_slice::<SyncResponse>(&bytes);
        let _ = cbor4ii::serde::from_slice::<BlobRequest>(&bytes);
        let _ = cbor4ii::serde::from_slice::<BlobResponse>(&bytes);
    }
}
