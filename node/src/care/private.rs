//! Private transactions on the node (spec: `specs/private-transactions.md`).
//!
//! - **Sending**: the body is signed by the author (a DID hosted here) into the inner message,
//!   sealed for the recipients' X25519 `keyAgreement` keys (and the node's own), the blob kept
//!   here, and the public descriptor published as a transaction signed by the node's DID.
//! - **Receiving**: after each commit, off the ingest path, every new private transaction is
//!   trial-decrypted with the node's X25519 secrets; a hit becomes a `want` record and its blob
//!   is fetched from the origin node, else from other peers, over `/knoop/private/1`.
//! - **Serving** ([`Private::answer`]): a blob goes only to a member node that proves the fetch
//!   token; anyone else gets the same miss as for a blob that is not here.
//!
//! Blobs (ciphertext) and records live in the store's `private` family; content keys are
//! sealed in the keystore (`private/<tx id>`), so the store alone reveals no payload.

use std::sync::{Arc, Mutex, OnceLock};

use knoop_did::binding::binding_in;
use knoop_did::document::Relationship;
use knoop_did::knoop::registry::SignerKid;
use knoop_gossip::net::{AskClient, AskProtocol, NetView};
use knoop_gossip::wire::{BlobRequest, BlobResponse, MISS};
use knoop_gossip::{Transaction, TxId};
use knoop_privacy::inner::{Inner, SignedInner};
use knoop_privacy::seal::{fetch_token_matches, key_schedule};
use knoop_privacy::{Descriptor, Recipient, PRIVATE_CONTENT_TYPE};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn, Instrument};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::identity::did_ops::{DidOps, OpsError};
use crate::identity::did_state::DidState;
use crate::store::RocksStore;

/// Keys wrapped per recipient DID.
const KEYS_PER_RECIPIENT: usize = 4;
/// Other peers asked for a blob after the origin.
const FALLBACK_PEERS: usize = 8;
/// Blobs fetched per round.
const FETCHES_PER_ROUND: usize = 16;

/// Where a private transaction stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// For this node; the blob is still to be fetched.
    Want,
    /// Read: the blob is here and opened.
    Have,
    /// The blob or its inner message was wrong (see `error`).
    Invalid,
}

/// What this node knows of a private transaction it takes part in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub state: State,
    /// The node DID that published it.
    pub origin: String,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_ms: u64,
    /// Opened through a patient-key (symmetric) slot, found by a pointer: not addressed to
    /// this node by DID.
    #[serde(default)]
    pub symmetric: bool,
}

/// A message read from a private transaction.
#[derive(Clone, Debug)]
pub struct Message {
    pub author: String,
    pub to: Vec<String>,
    pub content_type: String,
    pub iat: u64,
    pub body: Vec<u8>,
}

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} lists no keyAgreement (X25519) key")]
    NoKeyAgreement(String),
    #[error("{0} is not known")]
    UnknownRecipient(String),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("sealing: {0}")]
    Seal(#[from] knoop_privacy::PrivateError),
    #[error("store: {0}")]
    Store(String),
}

fn record_key(tx: &TxId) -> Vec<u8> {
    [b"r/".as_slice(), &tx.0].concat()
}

fn blob_key(hash: &[u8; 32]) -> Vec<u8> {
    [b"b/".as_slice(), hash].concat()
}

fn cek_id(tx: &TxId) -> String {
    format!("private/{}", tx.to_hex())
}

fn now_ms() -> u64 {
    knoop_gossip::tx::now_ms()
}

/// The node's private-transaction state.
pub struct Private {
    ops: Arc<DidOps>,
    dids: Arc<DidState>,
    store: Arc<RocksStore>,
    node_did: String,
    net: OnceLock<(AskClient, NetView)>,
    /// Last by-type sequence number read.
    seen: Mutex<u64>,
}

impl Private {
    pub fn new(
        ops: Arc<DidOps>,
        dids: Arc<DidState>,
        store: Arc<RocksStore>,
        node_did: String,
    ) -> Self {
        Private {
            ops,
            dids,
            store,
            node_did,
            net: OnceLock::new(),
            seen: Mutex::new(0),
        }
    }

    /// Connects the fetcher to the network (once it runs).
    pub fn attach(&self, ask: AskClient, view: NetView) {
        let _ = self.net.set((ask, view));
    }

    fn record(&self, tx: &TxId) -> Option<Record> {
        let v = self.store.get_private(&record_key(tx)).ok()??;
        serde_json::from_slice(&v).ok()
    }

    fn put_record(&self, tx: &TxId, r: &Record) -> Result<(), SendError> {
        let v = serde_json::to_vec(r).map_err(|e| SendError::Store(e.to_string()))?;
        self.store
            .put_private(&record_key(tx), &v)
            .map_err(|e| SendError::Store(e.to_string()))
    }

    /// The recipient keys of `did`: its current `keyAgreement` keys, at most four.
    fn recipient_keys(&self, did: &str) -> Result<Vec<[u8; 32]>, SendError> {
        let (_, doc) = self
            .dids
            .current(did)
            .ok_or_else(|| SendError::UnknownRecipient(did.to_owned()))?;
        let keys: Vec<[u8; 32]> = doc
            .key_agreement_keys()
            .into_iter()
            .take(KEYS_PER_RECIPIENT)
            .map(|(_, k)| k)
            .collect();
        if keys.is_empty() {
            return Err(SendError::NoKeyAgreement(did.to_owned()));
        }
        Ok(keys)
    }

    /// Sends `body` from `author` (hosted here) to the DIDs `to`. Returns the transaction id.
    pub async fn send(
        &self,
        author: &str,
        to: Vec<String>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<TxId, SendError> {
        self.send_with(author, to, content_type, body, None).await
    }

    /// Like [`Private::send`], with a symmetric slot for readers who know `symmetric` (a
    /// patient's consent key, spec §3.4).
    pub async fn send_with(
        &self,
        author: &str,
        mut to: Vec<String>,
        content_type: &str,
        body: Vec<u8>,
        symmetric: Option<[u8; 32]>,
    ) -> Result<TxId, SendError> {
        to.sort();
        to.dedup();
        if to.is_empty() || to.len() > knoop_privacy::inner::MAX_TO {
            return Err(SendError::Invalid("to must name 1..63 DIDs".into()));
        }
        let mut recipients = Vec::new();
        for did in &to {
            for k in self.recipient_keys(did)? {
                recipients.push(Recipient::X25519(k));
            }
        }
        // The origin can read back what it sent (after a restore, too).
        if let Some((_, own)) = self.ops.held_key_agreement(&self.node_did) {
            recipients.push(Recipient::X25519(own));
        }
        if let Some(k) = symmetric {
            recipients.push(Recipient::Symmetric(k));
        }
        let (esk, epk) = knoop_privacy::ephemeral();
        let (kid, key_id) = self.ops.assertion_kid(author)?;
        let iat = now_ms();
        let signed = SignedInner {
            v: 1,
            kid,
            cty: content_type.to_owned(),
            to: to.clone(),
            epk: ByteBuf::from(epk.to_vec()),
            iat,
            body: ByteBuf::from(body),
        };
        let inner = self
            .ops
            .keys
            .with_key(&key_id, |k| signed.sign(k))
            .map_err(OpsError::from)??;
        let sealed = knoop_privacy::seal(&inner, &recipients, &esk)?;
        let d = &sealed.descriptor;
        self.store
            .put_private(&blob_key(&d.blob_hash), &sealed.blob)
            .map_err(|e| SendError::Store(e.to_string()))?;
        let id = self
            .ops
            .publish_as(&self.node_did, PRIVATE_CONTENT_TYPE, d.to_cbor())
            .await?;
        self.ops
            .keys
            .put_bytes(&cek_id(&id), &sealed.cek)
            .map_err(OpsError::from)?;
        self.put_record(
            &id,
            &Record {
                state: State::Have,
                origin: self.node_did.clone(),
                author: Some(author.to_owned()),
                to,
                content_type: Some(content_type.to_owned()),
                iat: Some(iat),
                error: None,
                attempts: 0,
                next_ms: 0,
                symmetric: false,
            },
        )?;
        info!(tx = %id, recipients = recipients.len(), "private transaction sent");
        Ok(id)
    }

    /// The node's X25519 secrets (current and retained).
    fn local_secrets(&self) -> Vec<StaticSecret> {
        let ids = self
            .ops
            .keys
            .ids(&format!("{}#ka-", self.node_did))
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| {
                self.ops
                    .keys
                    .with_bytes(id, |b| StaticSecret::from(*b))
                    .ok()
            })
            .collect()
    }

    /// Trial-decrypts private transactions committed since the last call. Returns how many are
    /// newly for this node.
    pub fn catch_up(&self) -> usize {
        let after = self.seen.lock().map(|s| *s).unwrap_or(0);
        let (last, txs) =
            crate::store::read_by_type(self.store.as_ref(), PRIVATE_CONTENT_TYPE, after);
        let mut found = 0;
        let mut secrets: Option<Vec<StaticSecret>> = None;
        for (_, tx, payload) in txs {
            let id = tx.id();
            if self.record(&id).is_some() {
                continue;
            }
            let Ok(d) = Descriptor::from_cbor(&payload) else {
                continue;
            };
            let secrets = secrets.get_or_insert_with(|| self.local_secrets());
            if let Some(cek) = secrets
                .iter()
                .find_map(|s| knoop_privacy::trial_open(&d, s).ok().flatten())
            {
                if let Err(e) = self.want(&id, &tx, &cek) {
                    warn!(tx = %id, error = %e, "cannot record a private transaction");
                    continue;
                }
                found += 1;
            }
        }
        if let Ok(mut s) = self.seen.lock() {
            *s = last;
        }
        found
    }

    /// Takes part in private transaction `id` through its symmetric slot, if `key` opens one
    /// (a patient's consent key, found through a localisation pointer). Returns whether it is
    /// new here.
    pub fn adopt_symmetric(&self, id: &TxId, key: &[u8; 32]) -> Result<bool, SendError> {
        if self.record(id).is_some() {
            return Ok(false);
        }
        let Some((tx, d)) = self.descriptor_of(id) else {
            return Ok(false);
        };
        match knoop_privacy::open_symmetric(&d, key)? {
            Some(cek) => {
                self.want_via(id, &tx, &cek, true)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn want(&self, id: &TxId, tx: &Transaction, cek: &[u8; 32]) -> Result<(), SendError> {
        self.want_via(id, tx, cek, false)
    }

    fn want_via(
        &self,
        id: &TxId,
        tx: &Transaction,
        cek: &[u8; 32],
        symmetric: bool,
    ) -> Result<(), SendError> {
        self.ops
            .keys
            .put_bytes(&cek_id(id), cek)
            .map_err(OpsError::from)?;
        let origin = signer_did(tx).unwrap_or_default();
        debug!(tx = %id, %origin, "private transaction for this node");
        self.put_record(
            id,
            &Record {
                state: State::Want,
                origin,
                author: None,
                to: Vec::new(),
                content_type: None,
                iat: None,
                error: None,
                attempts: 0,
                next_ms: 0,
                symmetric,
            },
        )
    }

    /// The transaction and its descriptor, if `id` is a private transaction held here.
    fn descriptor_of(&self, id: &TxId) -> Option<(Transaction, Descriptor)> {
        let (t, payload) = knoop_gossip::log::read_tx(self.store.as_ref(), id).ok()??;
        let tx = Transaction::parse(&t.envelope, None).ok()?;
        if tx.header().cty != PRIVATE_CONTENT_TYPE {
            return None;
        }
        let d = Descriptor::from_cbor(&payload?).ok()?;
        Some((tx, d))
    }

    /// Where to ask for a blob: the origin node first, then connected peers.
    fn sources(&self, origin: &str) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut out = Vec::new();
        if let Some(b) = self.dids.current(origin).and_then(|(_, d)| binding_in(&d)) {
            if let Ok(p) = b.peer_id.parse::<PeerId>() {
                let addrs = b.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                out.push((p, addrs));
            }
        }
        if let Some((_, view)) = self.net.get() {
            for p in view.get().peers.iter() {
                if out.len() > FALLBACK_PEERS {
                    break;
                }
                if let Ok(id) = p.peer_id.parse::<PeerId>() {
                    if !out.iter().any(|(q, _)| *q == id) {
                        out.push((id, Vec::new()));
                    }
                }
            }
        }
        out
    }

    /// Fetches the blobs still wanted (due ones, a bounded number per round).
    pub async fn fetch_round(&self) {
        let Some((client, _)) = self.net.get() else {
            return;
        };
        let now = now_ms();
        let due: Vec<(TxId, Record)> = self
            .store
            .scan_private(b"r/")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let id = knoop_gossip::Hash32(k.get(2..34)?.try_into().ok()?);
                let r: Record = serde_json::from_slice(&v).ok()?;
                (r.state == State::Want && r.next_ms <= now).then_some((id, r))
            })
            .take(FETCHES_PER_ROUND)
            .collect();
        for (id, rec) in due {
            let span = tracing::info_span!("private_fetch", tx = %id);
            self.fetch_one(client, id, rec).instrument(span).await;
        }
    }

    async fn fetch_one(&self, client: &AskClient, id: TxId, mut rec: Record) {
        let Some((_, d)) = self.descriptor_of(&id) else {
            return;
        };
        let Ok(cek) = self.ops.keys.with_bytes(&cek_id(&id), |c| *c) else {
            return;
        };
        let ft = key_schedule(&cek).ft;
        let mut got = None;
        let request = cbor4ii::serde::to_vec(
            Vec::new(),
            &BlobRequest {
                tx: id.0.to_vec(),
                token: ft.to_vec(),
            },
        )
        .unwrap_or_default();
        for (peer, addrs) in self.sources(&rec.origin) {
            let answer = client
                .ask(peer, addrs, AskProtocol::Private, request.clone())
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    cbor4ii::serde::from_slice::<BlobResponse>(&b).map_err(|e| e.to_string())
                });
            match answer {
                Ok(BlobResponse::Blob(blob)) if knoop_privacy::open(&d, &cek, &blob).is_ok() => {
                    got = Some(blob);
                    break;
                }
                Ok(BlobResponse::Blob(_)) => {
                    debug!(%peer, "a peer sent a blob that does not open; next source")
                }
                Ok(other) => debug!(%peer, answer = ?other, "blob not held there"),
                Err(e) => debug!(%peer, error = %e, "blob not fetched from this peer"),
            }
        }
        match got {
            Some(blob) => {
                if let Err(why) = self.accept(&id, &d, &cek, &blob, &mut rec) {
                    warn!(error = %why, "private transaction for this node is invalid");
                    rec.state = State::Invalid;
                    rec.error = Some(why);
                }
            }
            None => {
                rec.attempts = rec.attempts.saturating_add(1);
                let backoff = 5_000u64
                    .saturating_mul(1 << rec.attempts.min(10))
                    .min(3_600_000);
                rec.next_ms = now_ms() + backoff;
            }
        }
        if let Err(e) = self.put_record(&id, &rec) {
            warn!(error = %e, "cannot update a private record");
        }
    }

    /// Checks a fetched blob (it opened) and its inner message; stores the blob.
    fn accept(
        &self,
        id: &TxId,
        d: &Descriptor,
        cek: &[u8; 32],
        blob: &[u8],
        rec: &mut Record,
    ) -> Result<(), String> {
        let message = self.read_blob(d, cek, blob)?;
        // Addressed to a DID that receives through one of this node's keys.
        let ours: Vec<[u8; 32]> = self
            .local_secrets()
            .iter()
            .map(|s| PublicKey::from(s).to_bytes())
            .collect();
        let addressed = message.to.iter().any(|did| {
            self.dids.current(did).is_some_and(|(_, doc)| {
                doc.key_agreement_keys()
                    .iter()
                    .any(|(_, k)| ours.contains(k))
            })
        }) || rec.origin == self.node_did
            || rec.symmetric;
        if !addressed {
            return Err("misaddressed: no recipient receives through this node".into());
        }
        self.store
            .put_private(&blob_key(&d.blob_hash), blob)
            .map_err(|e| e.to_string())?;
        rec.state = State::Have;
        rec.author = Some(message.author);
        rec.to = message.to;
        rec.content_type = Some(message.content_type);
        rec.iat = Some(message.iat);
        info!(tx = %id, author = ?rec.author, "private transaction received");
        Ok(())
    }

    /// Opens a blob and verifies its inner message against the author's DID.
    fn read_blob(&self, d: &Descriptor, cek: &[u8; 32], blob: &[u8]) -> Result<Message, String> {
        let inner = knoop_privacy::open(d, cek, blob).map_err(|e| e.code().to_owned())?;
        let inner = Inner::parse(&inner).map_err(|e| e.to_string())?;
        let s = &inner.signed;
        if s.epk.as_slice() != d.epk {
            return Err("the inner message names another ephemeral key".into());
        }
        let kid = SignerKid::parse(&s.kid).map_err(|e| e.to_string())?;
        let vm = format!("{}#{}", kid.did, kid.fragment);
        let key = self
            .dids
            .with_history(&kid.did, |h| {
                h.get(&kid.version)
                    .and_then(|r| r.document())
                    .and_then(|doc| doc.key_for(&vm, Relationship::AssertionMethod))
            })
            .flatten()
            .ok_or_else(|| format!("{vm} is not an assertionMethod key of that version"))?;
        if !inner.verify(&key) {
            return Err("the author's signature does not verify".into());
        }
        Ok(Message {
            author: kid.did.clone(),
            to: s.to.clone(),
            content_type: s.cty.clone(),
            iat: s.iat,
            body: s.body.to_vec(),
        })
    }

    /// The message of private transaction `id`, if this node has read it.
    pub fn read(&self, id: &TxId) -> Option<Message> {
        let rec = self.record(id)?;
        if rec.state != State::Have {
            return None;
        }
        let (_, d) = self.descriptor_of(id)?;
        let cek = self.ops.keys.with_bytes(&cek_id(id), |c| *c).ok()?;
        let blob = self.store.get_private(&blob_key(&d.blob_hash)).ok()??;
        self.read_blob(&d, &cek, &blob).ok()
    }

    /// Every private transaction this node takes part in.
    pub fn list(&self) -> Vec<(TxId, Record)> {
        self.store
            .scan_private(b"r/")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let id = knoop_gossip::Hash32(k.get(2..34)?.try_into().ok()?);
                Some((id, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }
}

/// The DID that signed `tx` (its `kid`).
pub(crate) fn signer_did(tx: &Transaction) -> Option<String> {
    let kid = tx.header().kid.as_deref()?;
    Some(kid.split(['?', '#']).next()?.to_owned())
}

impl Private {
    /// Answers `/knoop/private/1` (spec §6): only a member node holding the fetch token gets
    /// the blob; every other request, whatever this node holds, gets the same miss.
    pub fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8> {
        let encode = |r: &BlobResponse| cbor4ii::serde::to_vec(Vec::new(), r).unwrap_or_default();
        let Ok(req) = cbor4ii::serde::from_slice::<BlobRequest>(request) else {
            return encode(&BlobResponse::Refused("bad_request".into()));
        };
        let parsed = (
            <[u8; 32]>::try_from(req.tx.as_slice()),
            <[u8; 32]>::try_from(req.token.as_slice()),
        );
        let (Ok(tx), Ok(token)) = parsed else {
            return encode(&BlobResponse::Refused("bad_request".into()));
        };
        match self.serve(peer, &knoop_gossip::Hash32(tx), &token) {
            Some(blob) => encode(&BlobResponse::Blob(blob)),
            None => MISS.to_vec(),
        }
    }

    fn serve(&self, peer: &PeerId, tx: &TxId, token: &[u8; 32]) -> Option<Vec<u8>> {
        let operator = self.dids.did_of_peer(&peer.to_string())?;
        let (_, d) = self.descriptor_of(tx)?;
        if !fetch_token_matches(token, &d.fth) {
            return None;
        }
        let blob = self.store.get_private(&blob_key(&d.blob_hash)).ok()??;
        info!(%tx, requester = %operator, "private blob served");
        Some(blob)
    }
}
