//! An outsider's libp2p peer that speaks knoop's push protocol (gossipsub on `knoop/tx/1`) but
//! pushes invalid data: envelopes whose signature is another key's, and bytes that are no
//! transaction at all, replays of real transactions, and junk asks on `/knoop/locate/1` and `/knoop/private/1`. The
//! tests use it to see a node reject, never forward, penalise and ban, and to flood a node.

use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use knoop_gossip::net::{AskProtocol, RawCodec};
use knoop_gossip::wire::{WireTx, LOCATE_PROTOCOL, PATIENT_PROTOCOL, PRIVATE_PROTOCOL, TX_TOPIC};
use knoop_gossip::TxBuilder;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, Multiaddr, PeerId, StreamProtocol, Swarm};

/// An outbound-only client of a node-answered protocol.
fn asker(protocol: AskProtocol, name: &'static str) -> request_response::Behaviour<RawCodec> {
    request_response::Behaviour::with_codec(
        RawCodec::new(protocol),
        [(StreamProtocol::new(name), ProtocolSupport::Outbound)],
        request_response::Config::default(),
    )
}

#[derive(NetworkBehaviour)]
pub struct RogueBehaviour {
    identify: identify::Behaviour,
    gossipsub: gossipsub::Behaviour,
    locate: request_response::Behaviour<RawCodec>,
    private: request_response::Behaviour<RawCodec>,
    patient: request_response::Behaviour<RawCodec>,
}

/// The rogue peer and what it pushed.
pub struct RoguePeer {
    swarm: Swarm<RogueBehaviour>,
    topic: gossipsub::IdentTopic,
    key: SigningKey,
    other: SigningKey,
    /// Forged transactions published.
    pub sent: u64,
    /// The ids the forged envelopes would have.
    pub forged_ids: Vec<String>,
    /// The target closed the connection after at least one push.
    pub disconnected: bool,
    /// The target, once connected.
    target: Option<PeerId>,
    /// The dial failed or the connection was refused.
    pub refused: bool,
    /// Locate requests sent, and answered.
    pub asks_sent: u64,
    pub asks_answered: u64,
    /// The answers to `/knoop/patient/1` requests, as received.
    pub patient_answers: Vec<Vec<u8>>,
}

impl RoguePeer {
    /// A rogue announcing `protocol_version` in identify, dialling `target`.
    pub fn dial(target: &str, protocol_version: &str) -> anyhow::Result<RoguePeer> {
        Self::dial_with(target, protocol_version, false)
    }

    /// The same, publishing in gossipsub's signed mode (author, sequence number and signature
    /// on every message), which knoop's anonymous topic refuses.
    pub fn dial_signed(target: &str, protocol_version: &str) -> anyhow::Result<RoguePeer> {
        Self::dial_with(target, protocol_version, true)
    }

    fn dial_with(target: &str, protocol_version: &str, signed: bool) -> anyhow::Result<RoguePeer> {
        let version = protocol_version.to_owned();
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )?
            .with_behaviour(|key| {
                let (mode, authenticity) = if signed {
                    (
                        gossipsub::ValidationMode::Strict,
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                    )
                } else {
                    (
                        gossipsub::ValidationMode::Anonymous,
                        gossipsub::MessageAuthenticity::Anonymous,
                    )
                };
                let cfg = gossipsub::ConfigBuilder::default()
                    .validation_mode(mode)
                    .heartbeat_interval(Duration::from_millis(200))
                    .message_id_fn(|m: &gossipsub::Message| {
                        gossipsub::MessageId::from(knoop_gossip::Hash32::of(&m.data).0.to_vec())
                    })
                    .build()?;
                Ok(RogueBehaviour {
                    identify: identify::Behaviour::new(identify::Config::new(
                        version,
                        key.public(),
                    )),
                    gossipsub: gossipsub::Behaviour::new(authenticity, cfg)?,
                    locate: asker(AskProtocol::Locate, LOCATE_PROTOCOL),
                    private: asker(AskProtocol::Private, PRIVATE_PROTOCOL),
                    patient: asker(AskProtocol::Patient, PATIENT_PROTOCOL),
                })
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let topic = gossipsub::IdentTopic::new(TX_TOPIC);
        swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
        let addr: Multiaddr = target.parse().context("target address")?;
        swarm.dial(addr)?;
        Ok(RoguePeer {
            swarm,
            topic,
            key: SigningKey::from_bytes(&[66; 32]),
            other: SigningKey::from_bytes(&[67; 32]),
            sent: 0,
            forged_ids: Vec::new(),
            disconnected: false,
            target: None,
            refused: false,
            asks_sent: 0,
            asks_answered: 0,
            patient_answers: Vec::new(),
        })
    }

    /// Dials `target` once more, beside the connection being made (a second connection to
    /// the same peer).
    pub fn dial_again(&mut self, target: &str) -> anyhow::Result<()> {
        let addr: Multiaddr = target.parse().context("target address")?;
        let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
            .address(addr)
            .build();
        self.swarm.dial(opts)?;
        Ok(())
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.swarm
            .network_info()
            .connection_counters()
            .num_established() as usize
    }

    /// Runs the swarm for `wait`, or until the target disconnects after a push (or refuses
    /// the connection).
    pub async fn run_for(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.disconnected && !self.refused {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<RogueBehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.target = Some(peer_id),
            SwarmEvent::OutgoingConnectionError { .. } => self.refused = true,
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => self.disconnected = self.sent > 0 || self.asks_sent > 0,
            SwarmEvent::Behaviour(
                RogueBehaviourEvent::Locate(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                })
                | RogueBehaviourEvent::Private(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }),
            ) => self.asks_answered += 1,
            SwarmEvent::Behaviour(RogueBehaviourEvent::Patient(
                request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                },
            )) => {
                self.asks_answered += 1;
                self.patient_answers.push(response);
            }
            _ => {}
        }
    }

    /// Publishes `n` messages that are no transaction (in the rogue's gossipsub mode).
    pub fn push_junk(&mut self, n: usize) {
        for i in 0..n {
            let junk = format!("junk {} {i}", self.sent).into_bytes();
            self.push_raw(junk);
        }
    }

    /// Publishes `data` as it is (a replayed transaction, say); whether gossipsub took it.
    pub fn push_raw(&mut self, data: Vec<u8>) -> bool {
        let took = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
            .is_ok();
        if took {
            self.sent += 1;
        }
        took
    }

    /// Sends `request` on `/knoop/locate/1` to the target, once connected.
    pub fn ask_locate(&mut self, request: Vec<u8>) -> bool {
        self.ask(AskProtocol::Locate, request)
    }

    /// Sends `request` on `/knoop/patient/1` to the target, once connected.
    pub fn ask_patient(&mut self, request: Vec<u8>) -> bool {
        self.ask(AskProtocol::Patient, request)
    }

    /// Sends `request` on `/knoop/private/1` to the target, once connected.
    pub fn ask_private(&mut self, request: Vec<u8>) -> bool {
        self.ask(AskProtocol::Private, request)
    }

    fn ask(&mut self, protocol: AskProtocol, request: Vec<u8>) -> bool {
        let Some(target) = self.target else {
            return false;
        };
        let b = self.swarm.behaviour_mut();
        let behaviour = match protocol {
            AskProtocol::Locate => &mut b.locate,
            AskProtocol::Private => &mut b.private,
            AskProtocol::Patient => &mut b.patient,
        };
        behaviour.send_request(&target, request);
        self.asks_sent += 1;
        true
    }

    /// Whether the target has the rogue in its gossip (so pushes reach it).
    pub fn subscribed(&self) -> bool {
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .next()
            .is_some()
    }

    /// Runs the swarm until the target has the rogue in its gossip, at most `wait` (or until
    /// the connection is refused).
    pub async fn until_subscribed(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.subscribed() && !self.refused && tokio::time::Instant::now() < deadline {
            self.run_for(Duration::from_millis(100)).await;
        }
        self.subscribed()
    }

    /// Publishes one forged transaction (the envelope of one key with the signature of
    /// another: `bad_signature`) and one message that is no transaction (`malformed`).
    pub fn push_forged(&mut self) {
        let n = self.sent;
        let text = format!("forged {n}").into_bytes();
        let Ok(a) = TxBuilder::new("text/plain").sign(&self.key, text.clone()) else {
            return;
        };
        let Ok(b) = TxBuilder::new("text/plain")
            .sigt(a.header().sigt)
            .sign(&self.other, text)
        else {
            return;
        };
        let (Some((head, _)), Some((_, signature))) =
            (a.envelope().rsplit_once('.'), b.envelope().rsplit_once('.'))
        else {
            return;
        };
        let envelope = format!("{head}.{signature}");
        self.forged_ids
            .push(knoop_gossip::Hash32::of(envelope.as_bytes()).to_hex());
        let msg = WireTx {
            envelope,
            payload: a.payload().map(|p| p.to_vec()),
        };
        let gossip = &mut self.swarm.behaviour_mut().gossipsub;
        match gossip.publish(self.topic.clone(), msg.encode()) {
            Ok(_) => self.sent += 1,
            Err(e) => eprintln!("publish refused locally: {e}"),
        }
        let _ = gossip.publish(self.topic.clone(), format!("junk {n}").into_bytes());
    }
}
