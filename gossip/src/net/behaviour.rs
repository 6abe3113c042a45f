//! The composed libp2p behaviour.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, gossipsub, identify, identity::Keypair, kad, ping, request_response,
    StreamProtocol,
};

use super::ask::{AskProtocol, RawCodec};
use crate::wire::{
    AdmitRequest, AdmitResponse, SyncRequest, SyncResponse, ADMIT_PROTOCOL, MAX_ADMIT_BYTES,
    MAX_PUSH_BYTES, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SYNC_PROTOCOL,
};

pub(crate) const KAD_PROTOCOL: &str = "/knoop/kad/1.0.0";
/// Connections one peer may hold at once (two: both sides may dial at the same moment).
const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Incoming connections still in their handshake at once.
const MAX_PENDING_INCOMING: u32 = 32;
/// The `protocolVersion` a knoop node announces in identify (whose stream protocol is libp2p's
/// fixed `/ipfs/id/1.0.0`, `specs/sync.md` §3).
/// Minor version 1 added the state exchange (`specs/sync.md` §6.4).
pub(crate) const IDENTIFY_PROTOCOL_VERSION: &str = "/knoop/id/1.1.0";

/// Whether a peer's identify answer is a knoop node's: protocol version 1 (`/knoop/id/1.x`)
/// and the sync protocol among its protocols. Only such peers enter the routing table and are
/// reconciled with.
pub(crate) fn is_knoop_peer(protocol_version: &str, protocols: &[StreamProtocol]) -> bool {
    protocol_version.starts_with("/knoop/id/1.")
        && protocols.iter().any(|p| p.as_ref() == SYNC_PROTOCOL)
}

/// Whether a knoop peer answers the sync protocol's state request: protocol version 1.1 or
/// later. A 1.0 peer cannot decode it and would count it against the asker.
pub(crate) fn answers_state(protocol_version: &str) -> bool {
    protocol_version
        .strip_prefix("/knoop/id/1.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse::<u32>().ok())
        .is_some_and(|minor| minor >= 1)
}

#[cfg(test)]
mod identify_tests {
    use super::*;

    #[test]
    fn only_knoop_peers_with_sync_count() {
        let sync = [StreamProtocol::new(SYNC_PROTOCOL)];
        assert!(is_knoop_peer(IDENTIFY_PROTOCOL_VERSION, &sync));
        assert!(is_knoop_peer("/knoop/id/1.1.0", &sync));
        assert!(!is_knoop_peer("/ipfs/0.1.0", &sync));
        assert!(!is_knoop_peer("/knoop/id/2.0.0", &sync));
        assert!(!is_knoop_peer(
            IDENTIFY_PROTOCOL_VERSION,
            &[StreamProtocol::new("/ipfs/ping/1.0.0")]
        ));
    }

    #[test]
    fn only_version_1_1_and_later_answer_state() {
        assert!(answers_state(IDENTIFY_PROTOCOL_VERSION));
        assert!(answers_state("/knoop/id/1.12.0"));
        assert!(!answers_state("/knoop/id/1.0.0"));
        assert!(!answers_state("/knoop/id/2.1.0"));
        assert!(!answers_state("/knoop/id/1.x"));
    }
}

pub(crate) type SyncCodec = request_response::cbor::codec::Codec<SyncRequest, SyncResponse>;
pub(crate) type AdmitCodec = request_response::cbor::codec::Codec<AdmitRequest, AdmitResponse>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses new connections from addresses whose peers keep being banned (Sybils).
    pub ip_guard: super::ip_guard::IpGuard,
    /// Hard caps on connections, enforced before a connection is established (the driver
    /// also closes peers beyond `max_peers`, `specs/sync.md` §3).
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub private: request_response::Behaviour<RawCodec>,
    pub locate: request_response::Behaviour<RawCodec>,
    pub patient: request_response::Behaviour<RawCodec>,
    pub admit: request_response::Behaviour<AdmitCodec>,
}

impl Behaviour {
    pub fn new(key: &Keypair, max_peers: usize) -> Result<Self, String> {
        let local = key.public().to_peer_id();
        let incoming = u32::try_from(max_peers)
            .unwrap_or(u32::MAX / 4)
            .saturating_mul(MAX_CONNECTIONS_PER_PEER)
            .saturating_add(8);
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                .with_max_established_incoming(Some(incoming)),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.into(), key.public())
                .with_agent_version(format!("knoop/{}", env!("CARGO_PKG_VERSION"))),
        );
        let mut kad_cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_cfg.set_query_timeout(Duration::from_secs(30));
        let mut kad =
            kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_cfg);
        kad.set_mode(Some(kad::Mode::Server));

        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(700))
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .validate_messages()
            .max_transmit_size(MAX_PUSH_BYTES)
            .duplicate_cache_time(Duration::from_secs(120))
            // Transactions identify themselves: the message id is the hash of the message.
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(crate::tx::Hash32::of(&m.data).0.to_vec())
            })
            .build()
            .map_err(|e| e.to_string())?;
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_cfg)?;
        let (params, thresholds) = super::scoring::score_params();
        gossipsub.with_peer_score(params, thresholds)?;
        let admit = request_response::Behaviour::with_codec(
            AdmitCodec::default()
                .set_request_size_maximum(MAX_ADMIT_BYTES)
                .set_response_size_maximum(MAX_ADMIT_BYTES),
            [(
                StreamProtocol::new(ADMIT_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(16),
        );

        let codec = SyncCodec::default()
            .set_request_size_maximum(MAX_REQUEST_BYTES)
            .set_response_size_maximum(MAX_RESPONSE_BYTES);
        let sync = request_response::Behaviour::with_codec(
            codec,
            [(
                StreamProtocol::new(SYNC_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(30))
                .with_max_concurrent_streams(128),
        );
        let asked = |p: AskProtocol, timeout: u64| {
            request_response::Behaviour::with_codec(
                RawCodec::new(p),
                [(
                    StreamProtocol::new(p.name()),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(timeout))
                    .with_max_concurrent_streams(64),
            )
        };
        Ok(Behaviour {
            ip_guard: super::ip_guard::IpGuard::default(),
            limits,
            identify,
            ping: ping::Behaviour::default(),
            kad,
            gossipsub,
            sync,
            private: asked(AskProtocol::Private, 30),
            locate: asked(AskProtocol::Locate, 5),
            patient: asked(AskProtocol::Patient, 10),
            admit,
        })
    }
}
