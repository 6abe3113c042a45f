//! The private blob exchange `/knoop/private/1` (spec: `specs/private-transactions.md` §6): a
//! participant fetches the sealed payload of a private transaction from a peer, proving its
//! right with the fetch token. The access decision is the node's ([`BlobServer`]): this module
//! only carries requests and answers, so it knows nothing of DIDs or keys.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::tx::{Hash32, TxId};
use crate::wire::{BlobRequest, BlobResponse};

/// Decides what a blob request gets. Implemented by the node.
pub trait BlobServer: Send + Sync + 'static {
    /// The blob of private transaction `tx` if `token` is its fetch token, `peer` may fetch it
    /// and it is held here; `None` otherwise. The caller answers every `None` with the same
    /// bytes, so the reason never shows.
    fn serve(&self, peer: &PeerId, tx: &TxId, token: &[u8; 32]) -> Option<Vec<u8>>;
}

/// Why a fetch got no blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobFetchError {
    /// The peer answered "not here" (or "not for you": indistinguishable by design).
    #[error("not held there")]
    Miss,
    #[error("refused: {0}")]
    Refused(String),
    #[error("request failed: {0}")]
    Failed(String),
    #[error("the network is not running")]
    Offline,
}

pub(crate) struct BlobCommand {
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    request: BlobRequest,
    reply: oneshot::Sender<Result<Vec<u8>, BlobFetchError>>,
}

/// Sends blob requests through the network task.
#[derive(Clone, Debug)]
pub struct BlobClient {
    tx: Option<mpsc::Sender<BlobCommand>>,
}

impl std::fmt::Debug for BlobCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCommand")
            .field("peer", &self.peer)
            .finish()
    }
}

impl BlobClient {
    pub(crate) fn new(tx: mpsc::Sender<BlobCommand>) -> Self {
        BlobClient { tx: Some(tx) }
    }

    /// A client for a node that is not on the network: every fetch fails with `Offline`.
    pub fn offline() -> Self {
        BlobClient { tx: None }
    }

    /// Asks `peer` (dialled at `addrs` if not connected) for the blob of `tx`.
    pub async fn fetch(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        tx: &TxId,
        token: &[u8; 32],
    ) -> Result<Vec<u8>, BlobFetchError> {
        let Some(sender) = &self.tx else {
            return Err(BlobFetchError::Offline);
        };
        let (reply, rx) = oneshot::channel();
        sender
            .send(BlobCommand {
                peer,
                addrs,
                request: BlobRequest {
                    tx: tx.0.to_vec(),
                    token: token.to_vec(),
                },
                reply,
            })
            .await
            .map_err(|_| BlobFetchError::Offline)?;
        rx.await.map_err(|_| BlobFetchError::Offline)?
    }
}

/// The driver's side: outstanding requests and the server.
pub(crate) struct BlobExchange {
    server: Option<Arc<dyn BlobServer>>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, BlobFetchError>>>,
}

/// What an inbound request turns into once the server has decided.
pub(crate) struct BlobAnswer {
    pub channel: ResponseChannel<BlobResponse>,
    pub response: BlobResponse,
}

impl BlobExchange {
    pub(crate) fn new(server: Option<Arc<dyn BlobServer>>) -> Self {
        BlobExchange {
            server,
            pending: HashMap::new(),
        }
    }

    /// Sends a request (the behaviour dials the peer if needed).
    pub(crate) fn send(
        &mut self,
        rr: &mut request_response::Behaviour<crate::net::behaviour::BlobCodec>,
        cmd: BlobCommand,
    ) {
        let id = rr.send_request_with_addresses(&cmd.peer, cmd.request, cmd.addrs);
        self.pending.insert(id, cmd.reply);
    }

    /// Decides an inbound request off the network task; `done` receives the answer.
    pub(crate) fn serve(
        &self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<BlobResponse>,
        done: impl FnOnce(BlobAnswer) + Send + 'static,
    ) {
        let parsed = (
            <[u8; 32]>::try_from(request.tx.as_slice()),
            <[u8; 32]>::try_from(request.token.as_slice()),
        );
        let (Ok(tx), Ok(token)) = parsed else {
            done(BlobAnswer {
                channel,
                response: BlobResponse::Refused("bad_request".into()),
            });
            return;
        };
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || {
            let response = match server.and_then(|s| s.serve(&peer, &Hash32(tx), &token)) {
                Some(blob) => BlobResponse::Blob(blob),
                None => BlobResponse::Miss(None),
            };
            done(BlobAnswer { channel, response });
        });
    }

    pub(crate) fn on_response(&mut self, id: OutboundRequestId, response: BlobResponse) {
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(match response {
                BlobResponse::Blob(b) => Ok(b),
                BlobResponse::Miss(_) => Err(BlobFetchError::Miss),
                BlobResponse::Refused(r) => Err(BlobFetchError::Refused(r)),
            });
        }
    }

    pub(crate) fn on_failure(&mut self, id: OutboundRequestId, error: String) {
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(Err(BlobFetchError::Failed(error)));
        }
    }
}
