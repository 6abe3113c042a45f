//! Request/response protocols whose answers the node decides: `/knoop/private/1` (the sealed
//! payloads of private transactions, spec: `specs/private-transactions.md` §6) and
//! `/knoop/locate/1` (who holds data about a patient, spec: `specs/consent-localisation.md` §7)
//! and `/knoop/patient/1` (a patient's own view, spec: `specs/patient-view.md` §3).
//!
//! This module only carries bytes: one request and one response per stream, each bounded. What
//! they mean, and who gets what, is the [`Responder`]'s business (the node), so `gossip` knows
//! nothing of DIDs, keys or patients.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::wire::{LOCATE_PROTOCOL, PATIENT_PROTOCOL, PRIVATE_PROTOCOL};

/// The node-answered protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AskProtocol {
    Private,
    Locate,
    /// A patient service asking a holder for a patient's own view.
    Patient,
}

impl AskProtocol {
    pub fn name(self) -> &'static str {
        match self {
            AskProtocol::Private => PRIVATE_PROTOCOL,
            AskProtocol::Locate => LOCATE_PROTOCOL,
            AskProtocol::Patient => PATIENT_PROTOCOL,
        }
    }

    /// `(largest request, largest response)` in bytes.
    pub fn limits(self) -> (u64, u64) {
        match self {
            AskProtocol::Private => (256, 262_400),
            AskProtocol::Locate => (1024, 65_536),
            AskProtocol::Patient => (4096, 1 << 20),
        }
    }
}

/// Answers requests of the node-answered protocols. Implemented by the node.
pub trait Responder: Send + Sync + 'static {
    /// The response bytes for `request` from `peer`.
    fn respond(&self, peer: &PeerId, protocol: AskProtocol, request: &[u8]) -> Vec<u8>;
}

/// Why an ask got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    #[error("request failed: {0}")]
    Failed(String),
    #[error("the network is not running")]
    Offline,
}

/// Raw bytes, bounded per protocol (the codec of both node-answered protocols; public for
/// clients and test peers of other software).
#[derive(Clone)]
pub struct RawCodec {
    max_request: u64,
    max_response: u64,
}

impl RawCodec {
    pub fn new(p: AskProtocol) -> Self {
        let (max_request, max_response) = p.limits();
        RawCodec {
            max_request,
            max_response,
        }
    }
}

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, max: u64) -> io::Result<Vec<u8>> {
    let mut b = Vec::new();
    io.take(max + 1).read_to_end(&mut b).await?;
    if b.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too large",
        ));
    }
    Ok(b)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_bounded(io, self.max_request).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_bounded(io, self.max_response).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

pub(crate) struct AskCommand {
    pub(crate) protocol: AskProtocol,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    request: Vec<u8>,
    reply: Reply,
}

/// Sends requests of the node-answered protocols through the network task.
#[derive(Clone, Debug)]
pub struct AskClient {
    tx: Option<mpsc::Sender<AskCommand>>,
}

impl AskClient {
    pub(crate) fn new(tx: mpsc::Sender<AskCommand>) -> Self {
        AskClient { tx: Some(tx) }
    }

    /// A client for a node that is not on the network: every ask fails with `Offline`.
    pub fn offline() -> Self {
        AskClient { tx: None }
    }

    /// Sends `request` to `peer` (dialled at `addrs` if not connected); returns the raw answer.
    pub async fn ask(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        protocol: AskProtocol,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, AskError> {
        let Some(sender) = &self.tx else {
            return Err(AskError::Offline);
        };
        let (reply, rx) = oneshot::channel();
        sender
            .send(AskCommand {
                protocol,
                peer,
                addrs,
                request,
                reply,
            })
            .await
            .map_err(|_| AskError::Offline)?;
        rx.await.map_err(|_| AskError::Offline)?
    }
}

/// An answer decided off the network task, to send back.
pub(crate) struct AskAnswer {
    pub protocol: AskProtocol,
    pub channel: ResponseChannel<Vec<u8>>,
    pub response: Vec<u8>,
}

/// Where an outbound request's answer goes.
type Reply = oneshot::Sender<Result<Vec<u8>, AskError>>;

/// The driver's side: outstanding requests and the responder.
pub(crate) struct AskExchange {
    responder: Option<Arc<dyn Responder>>,
    pending: HashMap<(AskProtocol, OutboundRequestId), Reply>,
}

impl AskExchange {
    pub(crate) fn new(responder: Option<Arc<dyn Responder>>) -> Self {
        AskExchange {
            responder,
            pending: HashMap::new(),
        }
    }

    pub(crate) fn send(&mut self, rr: &mut request_response::Behaviour<RawCodec>, cmd: AskCommand) {
        let id = rr.send_request_with_addresses(&cmd.peer, cmd.request, cmd.addrs);
        self.pending.insert((cmd.protocol, id), cmd.reply);
    }

    /// Decides an inbound request off the network task; `done` receives the answer. Without a
    /// responder, the answer is empty (the node answers nothing on this protocol).
    pub(crate) fn serve(
        &self,
        peer: PeerId,
        protocol: AskProtocol,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
        done: impl FnOnce(AskAnswer) + Send + 'static,
    ) {
        let responder = self.responder.clone();
        tokio::task::spawn_blocking(move || {
            let response = responder
                .map(|r| r.respond(&peer, protocol, &request))
                .unwrap_or_default();
            done(AskAnswer {
                protocol,
                channel,
                response,
            });
        });
    }

    pub(crate) fn on_response(
        &mut self,
        protocol: AskProtocol,
        id: OutboundRequestId,
        response: Vec<u8>,
    ) {
        if let Some(reply) = self.pending.remove(&(protocol, id)) {
            let _ = reply.send(Ok(response));
        }
    }

    pub(crate) fn on_failure(
        &mut self,
        protocol: AskProtocol,
        id: OutboundRequestId,
        error: String,
    ) {
        if let Some(reply) = self.pending.remove(&(protocol, id)) {
            let _ = reply.send(Err(AskError::Failed(error)));
        }
    }
}
