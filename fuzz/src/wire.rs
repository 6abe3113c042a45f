//! Transactions and the sync and ask protocols' frames (`specs/transaction.md`,
//! `specs/sync.md`, `specs/private-transactions.md` §6).

use ed25519_dalek::SigningKey;
use knoop_gossip::reconcile::{respond, Session, Snapshot};
use knoop_gossip::wire::{BlobRequest, BlobResponse, SyncRequest, SyncResponse, WireTx};
use knoop_gossip::{Hash32, Transaction, TxBuilder};

/// An envelope (the first line) and its content (the rest, if any), as a peer sends them.
pub fn tx_envelope(data: &[u8]) {
    let (envelope, payload) = super::split_line(data);
    let Some(envelope) = super::text(envelope) else {
        return;
    };
    if let Ok(tx) = Transaction::parse(envelope, payload.map(<[u8]>::to_vec)) {
        // What parsed has an id of its envelope, and parses again the same.
        assert_eq!(tx.id(), Hash32::of(envelope.as_bytes()));
        let again = Transaction::parse(tx.envelope(), tx.payload().map(<[u8]>::to_vec));
        assert!(again.is_ok_and(|t| t.id() == tx.id()));
    }
}

/// Structure-aware: the input chooses a content type, a signing time, parents and content,
/// and a transaction is signed from them, so that what follows the signature check is
/// reached. A transaction signed right always parses and verifies, unless a limit refuses it.
pub fn tx_signed(data: &[u8]) {
    let (head, payload) = super::split_line(data);
    let payload = payload.unwrap_or_default().to_vec();
    let cty = super::text(head).unwrap_or("application/octet-stream");
    let key = SigningKey::from_bytes(&[42; 32]);
    let prevs = payload
        .chunks_exact(40)
        .take(3)
        .map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(&c[..32]);
            let mut lc = [0u8; 8];
            lc.copy_from_slice(&c[32..]);
            (Hash32(id), u64::from_le_bytes(lc) >> 16)
        })
        .collect::<Vec<_>>();
    let sigt = payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(1_700_000_000_000, |b: [u8; 8]| u64::from_le_bytes(b) >> 20);
    let Ok(tx) = TxBuilder::new(cty)
        .prevs(prevs)
        .sigt(sigt)
        .sign(&key, payload.clone())
    else {
        return;
    };
    let parsed = Transaction::parse(tx.envelope(), Some(payload))
        .unwrap_or_else(|e| panic!("a transaction signed right does not parse: {e}"));
    assert_eq!(parsed.id(), tx.id());
    assert!(parsed.verify_signature(&key.verifying_key()).is_ok());
    let wire = WireTx::from_tx(&parsed);
    assert_eq!(WireTx::decode(&wire.encode()).ok(), Some(wire));
}

/// A pushed gossip message: CBOR `WireTx`, then the transaction in it.
pub fn wire_tx(data: &[u8]) {
    if let Ok(w) = WireTx::decode(data) {
        assert_eq!(WireTx::decode(&w.encode()).ok().as_ref(), Some(&w));
        let _ = w.parse();
    }
}

/// A sync request as a responder receives it.
pub fn sync_request(data: &[u8]) {
    if let Ok(r) = cbor4ii::serde::from_slice::<SyncRequest>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &r).unwrap_or_default();
        assert_eq!(
            cbor4ii::serde::from_slice::<SyncRequest>(&bytes).ok(),
            Some(r)
        );
    }
}

/// A sync response as an initiator receives it.
pub fn sync_response(data: &[u8]) {
    if let Ok(r) = cbor4ii::serde::from_slice::<SyncResponse>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &r).unwrap_or_default();
        assert_eq!(
            cbor4ii::serde::from_slice::<SyncResponse>(&bytes).ok(),
            Some(r.clone())
        );
        if let SyncResponse::Txs(txs) = r {
            for w in txs {
                let _ = w.parse();
            }
        }
    }
}

/// A small fixed set of items: ids 0..n at signing times 1000·i.
fn snapshot(n: u8) -> Snapshot {
    Snapshot::from_sorted((0..n).map(|i| (1000 * u64::from(i), Hash32::of(&[i]))))
}

/// A Negentropy message a responder answers against its set.
pub fn reconcile_respond(data: &[u8]) {
    let _ = respond(&snapshot(40), data);
}

/// A Negentropy answer an initiator feeds its session.
pub fn reconcile_step(data: &[u8]) {
    if let Ok((mut session, _)) = Session::start(snapshot(40)) {
        let _ = session.step(data);
    }
}

/// The private blob exchange's request and answer (and the locate protocol's miss).
pub fn ask_frames(data: &[u8]) {
    let _ = cbor4ii::serde::from_slice::<BlobRequest>(data);
    let _ = cbor4ii::serde::from_slice::<BlobResponse>(data);
}
