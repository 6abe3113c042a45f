//! The libp2p driver: a thin tokio task that owns the swarm and the per-peer sync state and
//! connects them to the [`LogHandle`]. The protocol logic it calls is sans-IO
//! ([`crate::reconcile`], [`crate::log`], [`peers`]).
//!
//! Transports and protocols (spec: `specs/sync.md`): TCP + Noise + Yamux; identify; ping;
//! Kademlia for discovery; gossipsub (topic [`crate::wire::TX_TOPIC`]) to push new transactions;
//! `/knoop/sync/1` (request/response, CBOR) for range-based set reconciliation and fetching;
//! `/knoop/private/1` and `/knoop/locate/1`, answered by the node ([`ask`]).

pub mod admission;
pub mod ask;
mod behaviour;
mod driver;
pub mod ip_guard;
pub mod peers;
mod scoring;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

pub use admission::Admission;
pub use ask::{AskClient, AskError, AskProtocol, RawCodec, Responder};
pub use driver::{spawn, Network};
pub use peers::PeerLimits;

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and whenever the node has too few peers. `/p2p/<id>` is optional.
    pub bootstrap: Vec<Multiaddr>,
    /// Connections beyond this many peers are closed.
    pub max_peers: usize,
    /// Discovered peers are dialled until this many are connected.
    pub target_peers: usize,
    /// A peer is reconciled with at most this often.
    pub sync_interval: Duration,
    /// Sessions a node starts per `sync_interval` at most, least recently synced peers first:
    /// the cost of reconciliation stays the same however many peers a node has, and every peer
    /// still comes round every `sync_interval × ⌈peers / sync_fanout⌉`.
    pub sync_fanout: usize,
    /// Per-peer rate limits.
    pub limits: PeerLimits,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            max_peers: 50,
            target_peers: 8,
            sync_interval: Duration::from_secs(2),
            sync_fanout: 3,
            limits: PeerLimits::default(),
        }
    }
}

/// A peer as shown in the node status.
#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub address: String,
    pub score: i32,
    pub agent: Option<String>,
    /// Milliseconds since the Unix epoch of the last finished reconciliation with this peer.
    pub last_sync_ms: Option<u64>,
    /// Differences found in that round.
    pub last_sync_differences: Option<usize>,
    /// The peer's last answer to the state request (`specs/sync.md` §6.4); `None` before the
    /// first, and for peers of protocol version 1.0.
    pub state: Option<PeerStateInfo>,
    /// Traffic with the peer since it connected.
    pub traffic: PeerTraffic,
    /// Served by this node: always in an open network; in a members-only one, once its
    /// membership credential verified (`specs/admission.md`).
    pub member: bool,
}

/// What a peer said of itself in the state exchange.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStateInfo {
    /// The peer's set digest (`specs/transaction.md` §9), at most 5 s old when it answered.
    pub digest: String,
    /// The peer's clock minus this node's, estimated from one exchange.
    pub clock_offset_ms: i64,
    /// The exchange's round trip: the offset's uncertainty is half of it.
    pub round_trip_ms: u64,
    /// When the answer came, in ms since the Unix epoch.
    pub at_ms: u64,
}

/// Counters of the traffic with one peer since it connected (reconciliation, fetch and push).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PeerTraffic {
    /// When the connection was made, in ms since the Unix epoch.
    pub connected_ms: u64,
    /// Reconciliations this node started with the peer that finished.
    pub sync_sessions: u64,
    /// Reconciliation and fetch bytes from and to the peer (Negentropy messages, fetched ids
    /// at 32 bytes each, transactions).
    pub bytes_sync_in: u64,
    pub bytes_sync_out: u64,
    /// Pushed transactions the peer forwarded here.
    pub received_push: u64,
    /// Transactions fetched from the peer.
    pub received_fetched: u64,
    /// Transactions the peer fetched from this node.
    pub served_fetched: u64,
}

/// Counters and state of the network, for `/status` and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub peers: Vec<PeerInfo>,
    pub banned: usize,
    pub sync_rounds: u64,
    pub sync_sessions: u64,
    pub fetch_queue: usize,
    pub received_push: u64,
    pub received_fetched: u64,
    /// Transactions from peers that were refused (invalid, or over a peer's push rate).
    pub rejected: u64,
    /// `rejected` by reason code (`bad_signature`, `malformed`, `rate_limited`, ...).
    pub rejected_by_reason: std::collections::BTreeMap<String, u64>,
    /// Transactions this node pushed to the gossip topic.
    pub pushed: u64,
    /// Transactions this node sent to peers that fetched them after reconciliation.
    pub served_fetched: u64,
    /// Reconciliation bytes (queries, answers and fetched transactions).
    pub bytes_sync_in: u64,
    pub bytes_sync_out: u64,
    /// Gossip push bytes (transactions as published; gossipsub's own framing and forwarding
    /// of others' messages are not counted).
    pub bytes_push_in: u64,
    pub bytes_push_out: u64,
}

impl NetStatus {
    /// Peers whose last reconciliation found no difference.
    pub fn peers_in_sync(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.last_sync_differences == Some(0))
            .count()
    }

    /// Milliseconds since the last finished reconciliation with any peer (the sync lag).
    pub fn last_sync_age_ms(&self, now_ms: u64) -> Option<u64> {
        self.peers
            .iter()
            .filter_map(|p| p.last_sync_ms)
            .max()
            .map(|t| now_ms.saturating_sub(t))
    }
}

/// Shared, read-mostly view of the network state.
#[derive(Clone, Default)]
pub struct NetView(
    Arc<RwLock<NetStatus>>,
    Arc<std::sync::OnceLock<libp2p::metrics::Registry>>,
);

impl NetView {
    pub fn get(&self) -> NetStatus {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }
    /// libp2p's wire counters (bytes in and out per protocol stack, every byte on every
    /// connection), once the network runs; Prometheus text via `prometheus_client`.
    pub fn wire_metrics(&self) -> Option<&libp2p::metrics::Registry> {
        self.1.get()
    }
    pub(crate) fn update(&self, f: impl FnOnce(&mut NetStatus)) {
        if let Ok(mut g) = self.0.write() {
            f(&mut g);
        }
    }
}

/// Network start-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("network set-up: {0}")]
    Setup(String),
}

/// The local peer id for a node key (Ed25519 secret key bytes).
pub fn peer_id_of(secret: [u8; 32]) -> Result<PeerId, NetError> {
    Ok(keypair_from_secret(secret)?.public().to_peer_id())
}

pub(crate) fn keypair_from_secret(secret: [u8; 32]) -> Result<libp2p::identity::Keypair, NetError> {
    libp2p::identity::Keypair::ed25519_from_bytes(secret)
        .map_err(|e| NetError::Setup(e.to_string()))
}
