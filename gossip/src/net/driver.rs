//! The tokio task that runs the swarm: one `select!` loop over swarm events, stored-transaction
//! events (to push), finished ingests, finished responder work, blob fetches and timers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, info_span, warn, Instrument};

mod admission;

use super::admission::Admission;
use super::ask::{AskAnswer, AskClient, AskExchange, AskProtocol, RawCodec, Responder};
use super::behaviour::{Behaviour, BehaviourEvent};
use super::peers::{PeerBook, Verdict, PENALTY_INVALID_TX, PENALTY_MALFORMED, PENALTY_RATE};
use super::{
    keypair_from_secret, NetConfig, NetError, NetView, PeerInfo, PeerStateInfo, PeerTraffic,
};
use crate::log::Source;
use crate::reconcile::{respond, Session};
use crate::service::{JobReport, LogHandle};
use crate::store::Store;
use crate::tx::{now_ms, Transaction, TxId};
use crate::wire::{
    AdmitResponse, BlobResponse, PeerState, StateQuery, SyncRequest, SyncResponse, WireTx,
    FETCH_RESPONSE_SOFT_LIMIT, MAX_FETCH_IDS, MISS, TX_TOPIC,
};

/// Fetch requests in flight per peer.
const MAX_INFLIGHT_FETCH: usize = 4;
/// Ids queued for fetching per peer; beyond this, later rounds pick them up.
const MAX_FETCH_QUEUE: usize = 200_000;
/// Ingest jobs from pushes in flight at once; pushes beyond are dropped (reconciliation
/// recovers them).
const MAX_PUSH_INFLIGHT: usize = 4096;
/// A fetched id is not asked of another peer for this long after its request went out.
const WANTED_TTL: Duration = Duration::from_secs(20);
/// A queued id is not asked of another peer for this long (a big catch-up's queue drains
/// for tens of seconds; before, a queued id was asked again after [`WANTED_TTL`] and fetched
/// twice).
const QUEUED_TTL: Duration = Duration::from_secs(180);

/// Whether an id wanted since `since` (`asked`: its request went out then) is still being
/// fetched at `now`.
fn still_wanted((since, asked): (Instant, bool), now: Instant) -> bool {
    let ttl = if asked { WANTED_TTL } else { QUEUED_TTL };
    now.duration_since(since) < ttl
}
const TICK: Duration = Duration::from_millis(250);
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(15);
/// How often the connected peers are remembered in the store (also at shutdown).
const SAVE_PEERS_INTERVAL: Duration = Duration::from_secs(30);
/// Most peers remembered.
const MAX_REMEMBERED_PEERS: usize = 64;
/// How often a peer is asked for its state (digest and clock, `specs/sync.md` §6.4).
const STATE_INTERVAL: Duration = Duration::from_secs(10);
/// A digest computed for a state answer serves the answers of this long after it.
const STATE_DIGEST_TTL: Duration = Duration::from_secs(5);

enum Done {
    Ingested {
        peer: PeerId,
        push: Option<gossipsub::MessageId>,
        /// Fetched ids to forget from `wanted` now that their ingest is over.
        fetched: Vec<TxId>,
        report: JobReport,
    },
    Respond {
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
        fault: bool,
    },
    RespondAsk(AskAnswer),
    /// The verdict on a peer's membership credential (`specs/admission.md`).
    Admitted {
        peer: PeerId,
        credential: String,
        verdict: Result<(), String>,
        channel: Option<ResponseChannel<AdmitResponse>>,
    },
}

enum Outbound {
    Reconcile,
    Fetch(Vec<TxId>),
    /// A state request sent at this time (ms since the Unix epoch).
    State(u64),
}

#[derive(Default)]
struct PeerSync {
    session: Option<(Session, Instant, usize)>,
    last_sync: Option<Instant>,
    last_sync_ms: Option<u64>,
    last_differences: Option<usize>,
    fetch_queue: VecDeque<TxId>,
    fetch_inflight: usize,
    address: Option<Multiaddr>,
    agent: Option<String>,
    supports_sync: bool,
    /// The peer announced protocol version 1.1 or later, so it answers state requests.
    answers_state: bool,
    listen_addrs: Vec<Multiaddr>,
    /// When its state was last asked for; `None` while never.
    state_asked: Option<Instant>,
    state: Option<PeerStateInfo>,
    traffic: PeerTraffic,
    /// Members-only networks: its credential verified (served), and when.
    member: bool,
    admitted_at: Option<Instant>,
    credential: Option<String>,
    /// It admitted this node (answered this node's credential with its own).
    admits_us: bool,
    /// This node's credential was sent on this connection.
    admit_asked: bool,
}

struct Driver<S: Store + ?Sized> {
    swarm: Swarm<Behaviour>,
    log: LogHandle<S>,
    config: NetConfig,
    view: NetView,
    book: PeerBook,
    peers: HashMap<PeerId, PeerSync>,
    outbound: HashMap<OutboundRequestId, (PeerId, Outbound)>,
    /// Ids being fetched: since when, and whether the request went out (asked) or the id is
    /// still queued. Not asked of anyone else meanwhile: for [`WANTED_TTL`] after the request,
    /// or [`QUEUED_TTL`] in a queue (a peer that holds a queue and never answers does not keep
    /// an id from others for longer).
    wanted: HashMap<TxId, (Instant, bool)>,
    done_tx: mpsc::Sender<Done>,
    push_slots: Arc<Semaphore>,
    topic: gossipsub::IdentTopic,
    last_discovery: Instant,
    /// When the sessions of the last `sync_interval` started (at most `sync_fanout`).
    session_starts: std::collections::VecDeque<Instant>,
    /// Peers known from earlier runs: dialled like bootstrap peers, so a node finds the network
    /// again when its bootstrap peers are gone.
    remembered: Vec<(PeerId, Vec<Multiaddr>)>,
    last_saved: Instant,
    counters: Counters,
    asks: AskExchange,
    /// The digest last computed for a state answer, shared with the blocking tasks that
    /// compute it (one at a time).
    state_digest: Arc<std::sync::Mutex<Option<(Instant, String)>>>,
    /// Members-only networks: who is a member (`None`: an open network).
    admission: Option<Arc<dyn Admission>>,
    admit_outbound: HashMap<OutboundRequestId, PeerId>,
    /// The membership credential last sent to peers (renewed: sent again, `admission.rs`).
    sent_credential: String,
}

/// What [`spawn`] starts: the status view, the client of the node-answered protocols and the
/// task.
pub struct Network {
    pub view: NetView,
    pub ask: AskClient,
    pub task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    sync_rounds: u64,
    sync_sessions: u64,
    received_push: u64,
    received_fetched: u64,
    rejected: u64,
    rejected_by_reason: std::collections::BTreeMap<&'static str, u64>,
    pushed: u64,
    served_fetched: u64,
    bytes_in: u64,
    bytes_out: u64,
    bytes_push_in: u64,
    bytes_push_out: u64,
}

impl Counters {
    fn reject(&mut self, reason: &'static str, n: u64) {
        self.rejected += n;
        *self.rejected_by_reason.entry(reason).or_default() += n;
    }
}

/// Starts the network task. It runs until `shutdown` turns true. `responder` answers
/// `/knoop/private/1` and `/knoop/locate/1` (none: empty answers). `admission` makes the
/// network members-only (`specs/admission.md`; none: open membership).
pub fn spawn<S: Store + ?Sized>(
    secret: [u8; 32],
    config: NetConfig,
    log: LogHandle<S>,
    responder: Option<Arc<dyn Responder>>,
    admission: Option<Arc<dyn Admission>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Network, NetError> {
    let key = keypair_from_secret(secret)?;
    let local = key.public().to_peer_id();
    let mut wire = libp2p::metrics::Registry::with_prefix("knoop_p2p");
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_dns()
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_bandwidth_metrics(&mut wire)
        .with_behaviour(|k| {
            Behaviour::new(k, config.max_peers)
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    let topic = gossipsub::IdentTopic::new(TX_TOPIC);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetError::Setup(e.to_string()))?;

    let view = NetView::default();
    let _ = view.1.set(wire);
    view.update(|s| s.peer_id = local.to_string());
    let (done_tx, mut done_rx) = mpsc::channel(4096);
    let (ask_tx, mut ask_rx) = mpsc::channel::<super::ask::AskCommand>(256);
    let mut driver = Driver {
        swarm,
        log: log.clone(),
        book: PeerBook::new(config.limits.clone()),
        config,
        view: view.clone(),
        peers: HashMap::new(),
        outbound: HashMap::new(),
        wanted: HashMap::new(),
        done_tx,
        push_slots: Arc::new(Semaphore::new(MAX_PUSH_INFLIGHT)),
        topic,
        last_discovery: Instant::now()
            .checked_sub(DISCOVERY_INTERVAL)
            .unwrap_or_else(Instant::now),
        session_starts: std::collections::VecDeque::new(),
        remembered: load_remembered(log.store().as_ref()),
        last_saved: Instant::now(),
        counters: Counters::default(),
        asks: AskExchange::new(responder),
        state_digest: Arc::default(),
        sent_credential: admission
            .as_ref()
            .map(|a| a.own_credential())
            .unwrap_or_default(),
        admission,
        admit_outbound: HashMap::new(),
    };
    for (peer, addrs) in driver.remembered.clone() {
        for a in addrs {
            driver.swarm.behaviour_mut().kad.add_address(&peer, a);
        }
    }
    let mut stored = log.subscribe();
    let span = info_span!("net", peer = %local);
    let task = tokio::spawn(async move {
        driver.dial_bootstrap();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = driver.swarm.select_next_some() => driver.on_swarm(ev),
                Some(done) = done_rx.recv() => driver.on_done(done),
                Some(cmd) = ask_rx.recv() => {
                    let b = driver.swarm.behaviour_mut();
                    let rr = match cmd.protocol {
                        AskProtocol::Private => &mut b.private,
                        AskProtocol::Locate => &mut b.locate,
                        AskProtocol::Patient => &mut b.patient,
                    };
                    driver.asks.send(rr, cmd);
                }
                s = stored.recv() => match s {
                    Ok(s) if s.source == Source::Local => driver.push(&s.tx),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        warn!(skipped = n, "push queue lagged; reconciliation will carry the rest");
                    }
                    Err(_) => break,
                },
                _ = tick.tick() => driver.on_tick(),
                _ = shutdown.changed() => break,
            }
        }
        driver.save_peers();
        info!("network stopped");
    }.instrument(span));
    Ok(Network {
        view,
        ask: AskClient::new(ask_tx),
        task,
    })
}

impl<S: Store + ?Sized> Driver<S> {
    fn dial_bootstrap(&mut self) {
        let local = *self.swarm.local_peer_id();
        for addr in self.config.bootstrap.clone() {
            let peer = addr.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            });
            if peer == Some(local) {
                continue;
            }
            if let Some(p) = peer {
                if self.swarm.is_connected(&p) {
                    continue;
                }
            } else if self
                .peers
                .values()
                .any(|s| s.address.as_ref() == Some(&addr))
            {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
        for (peer, addrs) in self.remembered.clone() {
            if self.peers.len() >= self.config.target_peers {
                break;
            }
            if peer == local || self.swarm.is_connected(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    /// Remembers the connected knoop peers and their listen addresses.
    fn save_peers(&mut self) {
        self.last_saved = Instant::now();
        let peers: Vec<(String, Vec<String>)> = self
            .peers
            .iter()
            .filter(|(_, s)| s.supports_sync && !s.listen_addrs.is_empty())
            .take(MAX_REMEMBERED_PEERS)
            .map(|(p, s)| {
                (
                    p.to_string(),
                    s.listen_addrs.iter().map(|a| a.to_string()).collect(),
                )
            })
            .collect();
        if peers.is_empty() {
            return;
        }
        if let Err(e) = self.log.store().save_peers(&peers) {
            warn!(error = %e, "cannot remember peers");
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                let a = address.to_string();
                self.view.update(|s| s.listen_addrs.push(a));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.book.is_banned(&peer_id, now) {
                    debug!(peer = %peer_id, "refusing banned peer");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                // Checked for every connection, not only a peer's first: a peer refused while
                // its first connection closes may have a second one established meanwhile.
                if !self.peers.contains_key(&peer_id) && self.peers.len() >= self.config.max_peers {
                    debug!(peer = %peer_id, connections = num_established.get(),
                        "peer limit reached; closing");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let st = self.peers.entry(peer_id).or_default();
                st.address = Some(endpoint.get_remote_address().clone());
                if st.traffic.connected_ms == 0 {
                    st.traffic.connected_ms = now_ms();
                }
                self.admission_on_connect(peer_id);
                if num_established.get() == 1 {
                    info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                info!(peer = %peer_id, "peer disconnected");
                self.drop_peer(&peer_id);
                self.book.forget(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // A knoop node of this protocol version with sync; any other libp2p peer (or
                // a future knoop version) is neither added to the routing table nor reconciled.
                let sync = super::behaviour::is_knoop_peer(&info.protocol_version, &info.protocols);
                if let Some(st) = self.peers.get_mut(&peer_id) {
                    st.agent = Some(info.agent_version.clone());
                    st.supports_sync = sync;
                    st.answers_state =
                        sync && super::behaviour::answers_state(&info.protocol_version);
                    st.listen_addrs = info.listen_addrs.iter().take(8).cloned().collect();
                }
                if sync {
                    self.admission_on_identify(peer_id);
                }
                // A non-member's addresses are added once it is admitted.
                if sync && self.is_member(&peer_id) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                    // A new knoop peer knows others: look for them now rather than at the next
                    // discovery round (at most every 2 s).
                    let now = Instant::now();
                    if self.peers.len() < self.config.target_peers
                        && now.duration_since(self.last_discovery) >= Duration::from_secs(2)
                    {
                        self.last_discovery = now;
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .get_closest_peers(PeerId::random());
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                addresses,
                ..
            })) if !self.swarm.is_connected(&peer)
                && self.peers.len() < self.config.target_peers
                && peer != *self.swarm.local_peer_id() =>
            {
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .addresses(addresses.into_vec())
                    .build();
                let _ = self.swarm.dial(opts);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_push(propagation_source, message_id, &message.data),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Private(ev)) => {
                self.on_ask(AskProtocol::Private, ev)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Locate(ev)) => {
                self.on_ask(AskProtocol::Locate, ev)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Patient(ev)) => {
                self.on_ask(AskProtocol::Patient, ev)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Admit(ev)) => self.on_admit(ev),
            _ => {}
        }
    }

    fn penalise(&mut self, peer: PeerId, penalty: i32, why: &str) {
        if self.book.penalise(peer, penalty, Instant::now()) == Verdict::Ban {
            warn!(%peer, reason = why, "peer banned for sending invalid data");
            if self.swarm.behaviour_mut().ip_guard.banned(&peer) {
                warn!(
                    %peer,
                    bans = super::ip_guard::SYBIL_BANS,
                    "the address of banned peers refused for new connections for a while (Sybils)"
                );
            }
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            self.drop_peer(&peer);
        } else {
            debug!(%peer, reason = why, score = self.book.score(&peer), "peer penalised");
        }
    }

    /// Bans the peers gossipsub's own scoring has graylisted (invalid messages it refused
    /// itself, such as signed ones on the anonymous topic; `scoring.rs`).
    fn ban_graylisted(&mut self) {
        let gossip = &self.swarm.behaviour().gossipsub;
        let graylisted: Vec<PeerId> = gossip
            .all_peers()
            .map(|(p, _)| *p)
            .filter(|p| gossip.peer_score(p).is_some_and(super::scoring::should_ban))
            .collect();
        for peer in graylisted {
            if !self.book.is_banned(&peer, Instant::now()) {
                self.penalise(
                    peer,
                    super::scoring::GRAYLISTED_PENALTY,
                    "invalid gossip messages",
                );
            }
        }
    }

    fn on_push(&mut self, peer: PeerId, id: gossipsub::MessageId, data: &[u8]) {
        if !self.is_member(&peer) {
            // Gossipsub does not mesh with a non-member; what it pushes anyway is not read.
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &peer, gossipsub::MessageAcceptance::Ignore);
            return;
        }
        self.counters.bytes_push_in += data.len() as u64;
        let reject = |d: &mut Self, why: &'static str| {
            d.counters.reject(why, 1);
            d.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &peer, gossipsub::MessageAcceptance::Reject);
            d.penalise(peer, PENALTY_MALFORMED, why);
        };
        if !self.book.allow_push(peer, Instant::now()) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &peer, gossipsub::MessageAcceptance::Ignore);
            self.counters.reject("rate_limited", 1);
            self.penalise(peer, PENALTY_RATE, "push rate");
            return;
        }
        let tx = match WireTx::decode(data).and_then(WireTx::parse) {
            Ok(tx) => tx,
            Err(e) => {
                // Debug, not warn: a flood of junk must not become a flood of log lines (the
                // rejected counters count each reason; the ban is logged with its reason).
                debug!(%peer, reason = e.code(), "rejected pushed transaction: {e}");
                return reject(self, e.code());
            }
        };
        let Ok(slot) = self.push_slots.clone().try_acquire_owned() else {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &peer, gossipsub::MessageAcceptance::Ignore);
            return;
        };
        self.counters.received_push += 1;
        if let Some(st) = self.peers.get_mut(&peer) {
            st.traffic.received_push += 1;
        }
        let log = self.log.clone();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Ok(report) = log.ingest(vec![tx], Source::Peer).await {
                let _ = done
                    .send(Done::Ingested {
                        peer,
                        push: Some(id),
                        fetched: Vec::new(),
                        report,
                    })
                    .await;
            }
        });
    }

    fn on_sync(&mut self, ev: request_response::Event<SyncRequest, SyncResponse>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if let Some((_, kind)) = self.outbound.remove(&request_id) {
                    if let Some(st) = self.peers.get_mut(&peer) {
                        match kind {
                            Outbound::Reconcile => st.session = None,
                            Outbound::Fetch(ids) => {
                                st.fetch_inflight = st.fetch_inflight.saturating_sub(1);
                                for id in ids {
                                    self.wanted.remove(&id);
                                }
                            }
                            Outbound::State(_) => {}
                        }
                    }
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound sync request failed");
                // The codec reports undecodable CBOR (and oversized requests, cut at the cap)
                // as invalid data.
                if let request_response::InboundFailure::Io(e) = &error {
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidData
                            | std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::Unsupported
                    ) {
                        self.penalise(peer, PENALTY_MALFORMED, "undecodable sync request");
                    }
                }
            }
            _ => {}
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        req: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if !self.is_member(&peer) {
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, SyncResponse::Refused("not_admitted".into()));
            return;
        }
        if !self.book.allow_request(peer, Instant::now()) {
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, SyncResponse::Refused("rate_limited".into()));
            self.penalise(peer, PENALTY_RATE, "request rate");
            return;
        }
        let done = self.done_tx.clone();
        match req {
            SyncRequest::Reconcile(query) => {
                self.counters.bytes_in += query.len() as u64;
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.traffic.bytes_sync_in += query.len() as u64;
                }
                let snapshot = self.log.index().snapshot();
                tokio::task::spawn_blocking(move || {
                    let (response, fault) = match respond(&snapshot, &query) {
                        Ok(r) => (SyncResponse::Reconcile(r), false),
                        Err(e) => {
                            debug!(%peer, error = %e, "bad reconciliation query");
                            (SyncResponse::Refused("bad_request".into()), true)
                        }
                    };
                    let _ = done.blocking_send(Done::Respond {
                        peer,
                        channel,
                        response,
                        fault,
                    });
                });
            }
            SyncRequest::Fetch(ids) => {
                if ids.len() > MAX_FETCH_IDS {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncResponse::Refused("bad_request".into()));
                    self.penalise(peer, PENALTY_MALFORMED, "oversized fetch");
                    return;
                }
                self.counters.bytes_in += (ids.len() * 32) as u64;
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.traffic.bytes_sync_in += (ids.len() * 32) as u64;
                }
                let store = self.log.store().clone();
                tokio::task::spawn_blocking(move || {
                    let response = SyncResponse::Txs(read_for_fetch(store.as_ref(), &ids));
                    let _ = done.blocking_send(Done::Respond {
                        peer,
                        channel,
                        response,
                        fault: false,
                    });
                });
            }
            SyncRequest::State(_) => {
                let index = self.log.index().clone();
                let cache = self.state_digest.clone();
                tokio::task::spawn_blocking(move || {
                    let digest = {
                        let mut cached = cache.lock().unwrap_or_else(|e| e.into_inner());
                        match &*cached {
                            Some((at, d)) if at.elapsed() < STATE_DIGEST_TTL => d.clone(),
                            _ => {
                                let d = index.digest();
                                *cached = Some((Instant::now(), d.clone()));
                                d
                            }
                        }
                    };
                    let response = SyncResponse::State(PeerState {
                        time_ms: now_ms(),
                        digest,
                    });
                    let _ = done.blocking_send(Done::Respond {
                        peer,
                        channel,
                        response,
                        fault: false,
                    });
                });
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, request_id: OutboundRequestId, response: SyncResponse) {
        let Some((_, kind)) = self.outbound.remove(&request_id) else {
            return;
        };
        match (kind, response) {
            (Outbound::Reconcile, SyncResponse::Reconcile(msg)) => {
                self.counters.bytes_in += msg.len() as u64;
                let Some(st) = self.peers.get_mut(&peer) else {
                    return;
                };
                st.traffic.bytes_sync_in += msg.len() as u64;
                let Some((mut session, started, mut diffs)) = st.session.take() else {
                    return;
                };
                match session.step(&msg) {
                    Ok(step) => {
                        diffs += step.need.len() + step.have.len();
                        self.queue_fetch(peer, step.need);
                        match step.next {
                            Some(q) => {
                                let st = self.peers.get_mut(&peer);
                                if let Some(st) = st {
                                    st.session = Some((session, started, diffs));
                                }
                                self.send(peer, SyncRequest::Reconcile(q), Outbound::Reconcile);
                            }
                            None => {
                                self.counters.sync_sessions += 1;
                                self.counters.sync_rounds += session.rounds as u64;
                                if let Some(st) = self.peers.get_mut(&peer) {
                                    st.last_sync = Some(Instant::now());
                                    st.last_sync_ms = Some(now_ms());
                                    st.last_differences = Some(diffs);
                                    st.traffic.sync_sessions += 1;
                                }
                                debug!(%peer, rounds = session.rounds, differences = diffs,
                                    ms = started.elapsed().as_millis() as u64, "reconciled");
                            }
                        }
                    }
                    Err(e) => {
                        warn!(%peer, error = %e, "bad reconciliation reply");
                        self.penalise(peer, PENALTY_MALFORMED, "bad reconcile reply");
                    }
                }
            }
            (Outbound::Fetch(asked), SyncResponse::Txs(txs)) => {
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.fetch_inflight = st.fetch_inflight.saturating_sub(1);
                }
                let asked: HashSet<TxId> = asked.into_iter().collect();
                let mut parsed = Vec::with_capacity(txs.len());
                let mut bad = 0;
                let mut bad_reason = "unasked";
                let mut bytes = 0u64;
                for w in txs {
                    bytes += (w.envelope.len() + w.payload.as_ref().map_or(0, |p| p.len())) as u64;
                    match w.parse() {
                        Ok(t) if asked.contains(&t.id()) => parsed.push(t),
                        Ok(_) => bad += 1,
                        Err(e) => {
                            debug!(%peer, reason = e.code(), "fetched transaction malformed");
                            bad_reason = e.code();
                            bad += 1;
                        }
                    }
                }
                // Ids asked for but not delivered may be asked of others; delivered ones stay
                // "wanted" until their ingest finishes, so no round fetches them twice.
                let delivered: HashSet<TxId> =
                    parsed.iter().map(|t: &Transaction| t.id()).collect();
                for id in asked.difference(&delivered) {
                    self.wanted.remove(id);
                }
                if bad > 0 {
                    self.counters.reject(bad_reason, bad as u64);
                    self.penalise(
                        peer,
                        PENALTY_INVALID_TX * bad.min(5),
                        "bad fetched transactions",
                    );
                }
                self.counters.bytes_in += bytes;
                self.counters.received_fetched += parsed.len() as u64;
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.traffic.bytes_sync_in += bytes;
                    st.traffic.received_fetched += parsed.len() as u64;
                }
                if !parsed.is_empty() {
                    self.spawn_ingest(peer, parsed);
                }
                self.pump_fetch(peer);
            }
            (Outbound::State(sent_ms), SyncResponse::State(state)) => {
                if !state.is_well_formed() {
                    return self.penalise(peer, PENALTY_MALFORMED, "malformed state answer");
                }
                let received_ms = now_ms();
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.state = Some(PeerStateInfo {
                        clock_offset_ms: state.clock_offset_ms(sent_ms, received_ms),
                        round_trip_ms: received_ms.saturating_sub(sent_ms),
                        at_ms: received_ms,
                        digest: state.digest,
                    });
                }
            }
            (kind, SyncResponse::Refused(why)) => {
                debug!(%peer, %why, "sync request refused");
                if let Some(st) = self.peers.get_mut(&peer) {
                    match kind {
                        Outbound::Reconcile => {
                            st.session = None;
                            st.last_sync = Some(Instant::now());
                        }
                        Outbound::Fetch(_) => {
                            st.fetch_inflight = st.fetch_inflight.saturating_sub(1)
                        }
                        Outbound::State(_) => {}
                    }
                }
            }
            (kind, _) => {
                if let (Outbound::Reconcile, Some(st)) = (&kind, self.peers.get_mut(&peer)) {
                    st.session = None;
                }
                self.penalise(peer, PENALTY_MALFORMED, "unexpected sync response");
            }
        }
    }

    fn spawn_ingest(&self, peer: PeerId, txs: Vec<Transaction>) {
        let log = self.log.clone();
        let done = self.done_tx.clone();
        let fetched: Vec<TxId> = txs.iter().map(|t| t.id()).collect();
        tokio::spawn(async move {
            if let Ok(report) = log.ingest(txs, Source::Peer).await {
                let _ = done
                    .send(Done::Ingested {
                        peer,
                        push: None,
                        fetched,
                        report,
                    })
                    .await;
            }
        });
    }

    fn ask_behaviour(&mut self, p: AskProtocol) -> &mut request_response::Behaviour<RawCodec> {
        let b = self.swarm.behaviour_mut();
        match p {
            AskProtocol::Private => &mut b.private,
            AskProtocol::Locate => &mut b.locate,
            AskProtocol::Patient => &mut b.patient,
        }
    }

    fn on_ask(&mut self, protocol: AskProtocol, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.is_member(&peer) {
                        let _ = self
                            .ask_behaviour(protocol)
                            .send_response(channel, MISS.to_vec());
                        return;
                    }
                    if !self.book.allow_request(peer, Instant::now()) {
                        let refused = cbor4ii::serde::to_vec(
                            Vec::new(),
                            &BlobResponse::Refused("rate_limited".into()),
                        )
                        .unwrap_or_default();
                        let _ = self.ask_behaviour(protocol).send_response(channel, refused);
                        self.penalise(peer, PENALTY_RATE, "request rate");
                        return;
                    }
                    let done = self.done_tx.clone();
                    self.asks
                        .serve(peer, protocol, request, channel, move |answer| {
                            let _ = done.blocking_send(Done::RespondAsk(answer));
                        });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.asks.on_response(protocol, request_id, response),
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => self
                .asks
                .on_failure(protocol, request_id, error.to_string()),
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, protocol = protocol.name(), "inbound request failed");
            }
            _ => {}
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::RespondAsk(a) => {
                let _ = self
                    .ask_behaviour(a.protocol)
                    .send_response(a.channel, a.response);
            }
            Done::Admitted {
                peer,
                credential,
                verdict,
                channel,
            } => self.on_admitted(peer, credential, verdict, channel),
            Done::Ingested {
                peer,
                push,
                fetched,
                report,
            } => {
                // Held as orphans (parents still on their way) stay wanted: the log has them,
                // and a round before their parents arrive would fetch them again.
                let now = Instant::now();
                for (i, id) in fetched.iter().enumerate() {
                    if matches!(
                        report.results.get(i),
                        Some(Err(crate::TxError::MissingParents(_)))
                    ) {
                        self.wanted.insert(*id, (now, true));
                    } else {
                        self.wanted.remove(id);
                    }
                }
                let mut fault = None;
                let mut accepted = false;
                for r in &report.results {
                    match r {
                        Ok(_) => accepted = true,
                        Err(e) if e.is_peer_fault() => {
                            self.counters.reject(e.code(), 1);
                            debug!(%peer, reason = e.code(), "rejected transaction from peer: {e}");
                            fault = Some(e.code());
                        }
                        Err(_) => {}
                    }
                }
                if let Some(id) = push {
                    let acceptance = if fault.is_some() {
                        gossipsub::MessageAcceptance::Reject
                    } else if accepted {
                        gossipsub::MessageAcceptance::Accept
                    } else {
                        gossipsub::MessageAcceptance::Ignore
                    };
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(&id, &peer, acceptance);
                }
                if let Some(code) = fault {
                    self.penalise(peer, PENALTY_INVALID_TX, code);
                }
                if !report.missing.is_empty() {
                    self.queue_fetch(peer, report.missing);
                }
            }
            Done::Respond {
                peer,
                channel,
                response,
                fault,
            } => {
                let (bytes, served) = match &response {
                    SyncResponse::Reconcile(m) => (m.len() as u64, 0),
                    SyncResponse::Txs(t) => (
                        t.iter()
                            .map(|w| w.envelope.len() + w.payload.as_ref().map_or(0, |p| p.len()))
                            .sum::<usize>() as u64,
                        t.len() as u64,
                    ),
                    _ => (0, 0),
                };
                self.counters.bytes_out += bytes;
                self.counters.served_fetched += served;
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.traffic.bytes_sync_out += bytes;
                    st.traffic.served_fetched += served;
                }
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
                if fault {
                    self.penalise(peer, PENALTY_MALFORMED, "bad reconciliation query");
                }
            }
        }
    }

    fn queue_fetch(&mut self, peer: PeerId, ids: Vec<TxId>) {
        let now = Instant::now();
        let store = self.log.store().clone();
        let Some(st) = self.peers.get_mut(&peer) else {
            return;
        };
        for id in ids {
            if st.fetch_queue.len() >= MAX_FETCH_QUEUE {
                break;
            }
            if self.wanted.get(&id).is_some_and(|w| still_wanted(*w, now)) {
                continue;
            }
            if store.contains_tx(&id).unwrap_or(false) {
                continue;
            }
            self.wanted.insert(id, (now, false));
            st.fetch_queue.push_back(id);
        }
        self.pump_fetch(peer);
    }

    /// Forgets `peer`'s sync state; the ids still queued for it may be asked of others.
    fn drop_peer(&mut self, peer: &PeerId) {
        if let Some(st) = self.peers.remove(peer) {
            for id in st.fetch_queue {
                if matches!(self.wanted.get(&id), Some((_, false))) {
                    self.wanted.remove(&id);
                }
            }
        }
    }

    fn pump_fetch(&mut self, peer: PeerId) {
        loop {
            let Some(st) = self.peers.get_mut(&peer) else {
                return;
            };
            if st.fetch_inflight >= MAX_INFLIGHT_FETCH || st.fetch_queue.is_empty() {
                return;
            }
            let n = st.fetch_queue.len().min(MAX_FETCH_IDS);
            let ids: Vec<TxId> = st.fetch_queue.drain(..n).collect();
            st.fetch_inflight += 1;
            // The wait for an answer counts from the request, not from the queue.
            let now = Instant::now();
            for id in &ids {
                self.wanted.insert(*id, (now, true));
            }
            self.send(peer, SyncRequest::Fetch(ids.clone()), Outbound::Fetch(ids));
        }
    }

    fn send(&mut self, peer: PeerId, req: SyncRequest, kind: Outbound) {
        let bytes = match &req {
            SyncRequest::Reconcile(q) => q.len() as u64,
            SyncRequest::Fetch(ids) => (ids.len() * 32) as u64,
            SyncRequest::State(_) => 0,
        };
        self.counters.bytes_out += bytes;
        if let Some(st) = self.peers.get_mut(&peer) {
            st.traffic.bytes_sync_out += bytes;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, req);
        self.outbound.insert(id, (peer, kind));
    }

    fn push(&mut self, tx: &Transaction) {
        let data = WireTx::from_tx(tx).encode();
        let len = data.len() as u64;
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
        {
            Ok(_) => {
                self.counters.pushed += 1;
                self.counters.bytes_push_out += len;
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic)
            | Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => debug!(error = %e, "push failed; reconciliation will carry it"),
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.ban_graylisted();
        // Reconcile with the peers whose last round is older than the interval, least recently
        // synced first, at most `sync_fanout` new sessions per interval.
        let interval = self.config.sync_interval;
        while self
            .session_starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= interval)
        {
            self.session_starts.pop_front();
        }
        let budget = self
            .config
            .sync_fanout
            .max(1)
            .saturating_sub(self.session_starts.len());
        let members_only = self.members_only();
        let mut due: Vec<(Option<Instant>, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                s.supports_sync
                    && (!members_only || (s.member && s.admits_us))
                    && s.session.is_none()
                    && s.fetch_queue.is_empty()
                    && s.fetch_inflight == 0
                    && s.last_sync
                        .is_none_or(|t| now.duration_since(t) >= interval)
            })
            .map(|(p, s)| (s.last_sync, *p))
            .collect();
        due.sort_unstable();
        for (_, peer) in due.into_iter().take(budget) {
            self.session_starts.push_back(now);
            let snapshot = self.log.index().snapshot();
            match Session::start(snapshot) {
                Ok((session, first)) => {
                    if let Some(st) = self.peers.get_mut(&peer) {
                        st.session = Some((session, now, 0));
                        st.last_sync = Some(now);
                    }
                    let _span = info_span!("sync_round", %peer).entered();
                    self.send(peer, SyncRequest::Reconcile(first), Outbound::Reconcile);
                }
                Err(e) => warn!(error = %e, "cannot start reconciliation"),
            }
        }
        self.ask_states(now);
        self.reverify_members(now);
        // Sessions that hang are dropped (the request timeout reports them too).
        for st in self.peers.values_mut() {
            if matches!(&st.session, Some((_, t, _)) if now.duration_since(*t) > Duration::from_secs(60))
            {
                st.session = None;
            }
        }
        self.wanted.retain(|_, w| still_wanted(*w, now));
        for p in self.book.expired_bans(now) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .remove_blacklisted_peer(&p);
        }
        if now.duration_since(self.last_discovery) >= DISCOVERY_INTERVAL
            || self.peers.is_empty()
                && now.duration_since(self.last_discovery) >= Duration::from_secs(3)
        {
            self.last_discovery = now;
            if self.peers.len() < self.config.target_peers {
                self.dial_bootstrap();
                if !self.peers.is_empty() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .get_closest_peers(PeerId::random());
                }
            }
        }
        if now.duration_since(self.last_saved) >= SAVE_PEERS_INTERVAL {
            self.save_peers();
        }
        self.publish_view();
    }

    /// Asks each peer that answers state requests for its state, every [`STATE_INTERVAL`].
    fn ask_states(&mut self, now: Instant) {
        let members_only = self.members_only();
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                s.answers_state
                    && (!members_only || (s.member && s.admits_us))
                    && s.state_asked
                        .is_none_or(|t| now.duration_since(t) >= STATE_INTERVAL)
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            if let Some(st) = self.peers.get_mut(&peer) {
                st.state_asked = Some(now);
            }
            let sent_ms = now_ms();
            self.send(
                peer,
                SyncRequest::State(StateQuery { time_ms: sent_ms }),
                Outbound::State(sent_ms),
            );
        }
    }

    fn publish_view(&mut self) {
        let members_only = self.members_only();
        let peers: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(p, s)| PeerInfo {
                peer_id: p.to_string(),
                address: s
                    .address
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                score: self.book.score(p),
                agent: s.agent.clone(),
                last_sync_ms: s.last_sync_ms,
                last_sync_differences: s.last_differences,
                state: s.state.clone(),
                traffic: s.traffic,
                member: !members_only || s.member,
            })
            .collect();
        let fetch_queue = self.peers.values().map(|s| s.fetch_queue.len()).sum();
        let c = &self.counters;
        let banned = self.book.banned_count();
        self.view.update(|v| {
            v.peers = peers;
            v.banned = banned;
            v.fetch_queue = fetch_queue;
            v.sync_rounds = c.sync_rounds;
            v.sync_sessions = c.sync_sessions;
            v.received_push = c.received_push;
            v.received_fetched = c.received_fetched;
            v.rejected = c.rejected;
            v.rejected_by_reason = c
                .rejected_by_reason
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect();
            v.pushed = c.pushed;
            v.served_fetched = c.served_fetched;
            v.bytes_push_in = c.bytes_push_in;
            v.bytes_push_out = c.bytes_push_out;
            v.bytes_sync_in = c.bytes_in;
            v.bytes_sync_out = c.bytes_out;
        });
    }
}

fn load_remembered<S: Store + ?Sized>(store: &S) -> Vec<(PeerId, Vec<Multiaddr>)> {
    store
        .load_peers()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, addrs)| {
            let peer: PeerId = id.parse().ok()?;
            let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            (!addrs.is_empty()).then_some((peer, addrs))
        })
        .take(MAX_REMEMBERED_PEERS)
        .collect()
}

/// Reads the asked transactions that are held, parents before children, up to the soft limit.
fn read_for_fetch<S: Store + ?Sized>(store: &S, ids: &[TxId]) -> Vec<WireTx> {
    let mut found: Vec<(u64, WireTx)> = Vec::with_capacity(ids.len());
    let mut bytes = 0usize;
    for id in ids {
        let Ok(Some((stored, payload))) = crate::log::read_tx(store, id) else {
            continue;
        };
        bytes += stored.envelope.len() + payload.as_ref().map_or(0, |p| p.len());
        found.push((
            stored.lc,
            WireTx {
                envelope: stored.envelope,
                payload,
            },
        ));
        if bytes > FETCH_RESPONSE_SOFT_LIMIT {
            break;
        }
    }
    found.sort_by_key(|(lc, _)| *lc);
    found.into_iter().map(|(_, w)| w).collect()
}
