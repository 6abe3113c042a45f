//! Sybil floods (`specs/sync.md` §8): an outsider banned for invalid data comes back at once
//! under a new peer id, and every comeback costs the node a handshake, identify and gossip
//! bookkeeping before it is banned again. When [`SYBIL_BANS`] peers from one IP address are
//! banned within [`SYBIL_WINDOW`], the address may open no new incoming connection for
//! [`SYBIL_COOLDOWN`]: refused before the handshake, at no cost. Peers already connected from
//! it stay, and the node still dials out to it.
//!
//! [`SybilGuard`] is the policy (pure logic); [`IpGuard`] applies it in the swarm.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::transport::PortUse;
use libp2p::core::{multiaddr::Protocol, Endpoint};
use libp2p::swarm::{
    behaviour::ConnectionEstablished, dummy, ConnectionDenied, ConnectionId, FromSwarm,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Bans of peers from one address that make it a Sybil source.
pub const SYBIL_BANS: usize = 10;
/// Within this long.
pub const SYBIL_WINDOW: Duration = Duration::from_secs(600);
/// How long its new incoming connections are refused.
pub const SYBIL_COOLDOWN: Duration = Duration::from_secs(600);
/// Addresses tracked at most (oldest forgotten first).
const MAX_TRACKED: usize = 4096;

/// The policy: recent bans per address, and the addresses cooling down.
#[derive(Debug, Default)]
pub struct SybilGuard {
    bans: HashMap<IpAddr, VecDeque<Instant>>,
    cooling: HashMap<IpAddr, Instant>,
}

impl SybilGuard {
    /// A peer from `ip` was banned at `now`; whether the address is cooling down now.
    pub fn banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.bans.len() >= MAX_TRACKED && !self.bans.contains_key(&ip) {
            self.forget_old(now);
        }
        let recent = self.bans.entry(ip).or_default();
        recent.push_back(now);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > SYBIL_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= SYBIL_BANS {
            recent.clear();
            self.cooling.insert(ip, now + SYBIL_COOLDOWN);
            return true;
        }
        self.cooling.get(&ip).is_some_and(|until| *until > now)
    }

    /// Whether `ip` may open a new incoming connection at `now`.
    pub fn allows(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.cooling.get(&ip) {
            Some(until) if *until > now => false,
            Some(_) => {
                self.cooling.remove(&ip);
                true
            }
            None => true,
        }
    }

    /// Addresses cooling down now.
    pub fn cooling(&self, now: Instant) -> usize {
        self.cooling.values().filter(|u| **u > now).count()
    }

    fn forget_old(&mut self, now: Instant) {
        self.bans.retain(|_, r| {
            r.back()
                .is_some_and(|t| now.duration_since(*t) <= SYBIL_WINDOW)
        });
        self.cooling.retain(|_, until| *until > now);
    }
}

/// The IP address of a multiaddr, if it has one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// [`SybilGuard`] in the swarm: refuses incoming connections from cooling addresses before
/// their handshake, and remembers each connected peer's address for [`IpGuard::banned`].
#[derive(Default)]
pub struct IpGuard {
    guard: SybilGuard,
    addresses: HashMap<PeerId, IpAddr>,
}

impl IpGuard {
    /// `peer` was banned: counts against its address; whether the address now cools down.
    pub fn banned(&mut self, peer: &PeerId) -> bool {
        match self.addresses.get(peer) {
            Some(ip) => self.guard.banned(*ip, Instant::now()),
            None => false,
        }
    }

    /// Addresses whose new connections are refused now.
    pub fn cooling(&self) -> usize {
        self.guard.cooling(Instant::now())
    }
}

/// Why an incoming connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("address {0} is cooling down after repeated bans of its peers")]
pub struct Cooling(IpAddr);

impl NetworkBehaviour for IpGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) if !self.guard.allows(ip, Instant::now()) => {
                Err(ConnectionDenied::new(Cooling(ip)))
            }
            _ => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id, endpoint, ..
            }) => {
                if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                    if self.addresses.len() >= MAX_TRACKED {
                        self.addresses.clear();
                    }
                    self.addresses.insert(peer_id, ip);
                }
            }
            FromSwarm::ConnectionClosed(c) if c.remaining_established == 0 => {
                // Kept briefly would be nicer; a ban is decided while the peer is connected.
                self.addresses.remove(&c.peer_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_cools_down_after_enough_bans_in_the_window_and_recovers() {
        let mut g = SybilGuard::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t = Instant::now();
        for i in 0..SYBIL_BANS - 1 {
            assert!(!g.banned(ip, t + Duration::from_secs(i as u64)));
        }
        assert!(g.allows(ip, t));
        assert!(g.banned(ip, t + Duration::from_secs(20)));
        assert!(!g.allows(ip, t + Duration::from_secs(21)));
        assert!(
            g.allows(other, t + Duration::from_secs(21)),
            "another address is not touched"
        );
        assert_eq!(g.cooling(t + Duration::from_secs(21)), 1);
        let after = t + Duration::from_secs(20) + SYBIL_COOLDOWN + Duration::from_secs(1);
        assert!(g.allows(ip, after));
        assert_eq!(g.cooling(after), 0);
    }

    #[test]
    fn bans_spread_beyond_the_window_never_add_up() {
        let mut g = SybilGuard::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t = Instant::now();
        for i in 0..3 * SYBIL_BANS {
            let at = t + (SYBIL_WINDOW / SYBIL_BANS as u32) * (i as u32) * 2;
            assert!(!g.banned(ip, at), "ban {i}");
        }
    }

    #[test]
    fn ip_of_reads_ip4_and_ip6() {
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/7475".parse().unwrap();
        let b: Multiaddr = "/ip6/::1/tcp/7475".parse().unwrap();
        let c: Multiaddr = "/dns4/example.org/tcp/7475".parse().unwrap();
        assert_eq!(ip_of(&a), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(ip_of(&b), Some("::1".parse().unwrap()));
        assert_eq!(ip_of(&c), None);
    }
}
