//! # knoop-gossip: the replicated transaction log
//!
//! Everything knoop publishes travels as signed transactions that every node eventually holds.
//! This crate is that layer, and knows nothing of DIDs or credentials: it carries signed
//! transactions with a content type and asks an [`Authorizer`] (supplied by the node) which key
//! must have signed each one.
//!
//! - [`tx`]: the transaction format, a compact JWS over the content hash
//!   (spec: `specs/transaction.md`).
//! - [`log`]: the ingest pipeline (dedupe, authorise, batch-verify, causal parents, one atomic
//!   commit per group), over a [`Store`] (spec of the layout: `specs/storage.md`).
//! - [`reconcile`]: range-based set reconciliation (Negentropy V1), sans-IO
//!   (spec: `specs/sync.md`).
//! - [`service`]: the tokio task that owns the log and commits in groups.
//! - [`net`]: the libp2p driver (TCP/Noise/Yamux, identify, ping, Kademlia, gossipsub push,
//!   the `/knoop/sync/1` protocol, peer scoring and rate limits).
//! - [`wire`]: the messages on the wire.
//!
//! Protocol logic is sans-IO so it is tested without sockets ([`sim`] runs whole networks in
//! memory); the real network is tested over processes in the workspace's `tests/`.

pub mod error;
pub mod log;
pub mod net;
pub mod reconcile;
pub mod service;
pub mod sim;
pub mod store;
pub mod tx;
pub mod wire;

pub use error::{StoreError, TxError};
pub use log::{
    Authorizer, CausalView, EmbeddedKeys, IngestReport, KeyLookup, Log, LogConfig, SharedIndex,
    Source,
};
pub use service::{LogHandle, Stored};
pub use store::{CommitBatch, MemStore, Store, StoredTx};
pub use tx::{Hash32, Transaction, TxBuilder, TxId};
