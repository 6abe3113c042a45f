//! Private transactions on the node (spec: `specs/private-transactions.md`).
//!
//! - **Sending**: the body is signed by the author (a DID hosted here) into the inner message,
//!   sealed for the recipients' X25519 `keyAgreement` keys (and the node's own), the blob kept
//!   here, and the public descriptor published as a transaction signed by the node's DID.
//! - **Receiving** (`receive.rs`): after each commit, off the ingest path, every new private transaction is
//!   trial-decrypted with the node's X25519 secrets; a hit becomes a `want` record and its blob
//!   is fetched from the origin node, else from other peers, over `/knoop/private/1`.
//! - **Serving** (`serve.rs`, [`Private::answer`]): a blob goes only to a member node that proves the fetch
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
use crate::store::NodeStore;

mod receive;
mod serve;

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
    store: Arc<dyn NodeStore>,
    node_did: String,
    net: OnceLock<(AskClient, NetView)>,
    /// Last by-type sequence number read.
    seen: Mutex<u64>,
}

impl Private {
    pub fn new(
        ops: Arc<DidOps>,
        dids: Arc<DidState>,
        store: Arc<dyn NodeStore>,
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

pub(crate) use crate::identity::did_state::signer_did;
