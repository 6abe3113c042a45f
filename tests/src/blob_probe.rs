//! A libp2p client for `/knoop/private/1` that keeps each answer's raw bytes, so tests can show
//! that a node's "not here" is byte for byte the same whatever the reason.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};

/// Requests and responses as raw bytes.
#[derive(Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut b = Vec::new();
        io.take(1024).read_to_end(&mut b).await?;
        Ok(b)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut b = Vec::new();
        io.take(1 << 20).read_to_end(&mut b).await?;
        Ok(b)
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

/// A peer that only asks for blobs.
pub struct BlobProbe {
    swarm: Swarm<request_response::Behaviour<RawCodec>>,
}

impl BlobProbe {
    /// A probe with the libp2p identity of Ed25519 secret `secret`.
    pub fn new(secret: [u8; 32]) -> anyhow::Result<Self> {
        let key = libp2p::identity::Keypair::ed25519_from_bytes(secret)?;
        let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RawCodec,
                    [(
                        StreamProtocol::new("/knoop/private/1"),
                        ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20)),
                )
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        Ok(BlobProbe { swarm })
    }

    /// Sends `{"i": tx, "t": token}` to `peer` at `addr`; returns the raw answer.
    pub async fn ask(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        tx: &[u8; 32],
        token: &[u8; 32],
    ) -> anyhow::Result<Vec<u8>> {
        // CBOR map(2) {"i": bstr(32), "t": bstr(32)}, written by hand: the test states the wire.
        let mut req = vec![0xa2, 0x61, b'i', 0x58, 0x20];
        req.extend_from_slice(tx);
        req.extend_from_slice(&[0x61, b't', 0x58, 0x20]);
        req.extend_from_slice(token);
        let id = self
            .swarm
            .behaviour_mut()
            .send_request_with_addresses(&peer, req, vec![addr]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await?;
            match ev {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                }) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                }) if request_id == id => anyhow::bail!("request failed: {error}"),
                _ => {}
            }
        }
    }
}
