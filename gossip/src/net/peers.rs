//! Per-peer bookkeeping: misbehaviour score, bans and request rate limits. Pure logic, driven
//! by the network driver with the current time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Score below which a peer is disconnected and banned.
pub const BAN_THRESHOLD: i32 = -100;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(600);
/// Penalty for a transaction that fails validation (bad signature, malformed, ...).
pub const PENALTY_INVALID_TX: i32 = -20;
/// Penalty for an undecodable message or a protocol violation.
pub const PENALTY_MALFORMED: i32 = -25;
/// Penalty for a request over the rate limit.
pub const PENALTY_RATE: i32 = -5;
/// Score regained per second of good behaviour (up to 0).
pub const RECOVERY_PER_SEC: i32 = 1;

/// A token bucket.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_sec: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate: rate_per_sec,
            burst,
            tokens: burst,
            at: now,
        }
    }
    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Limits applied to each peer.
#[derive(Clone, Debug)]
pub struct PeerLimits {
    /// Sync requests per second (sustained) and burst.
    pub requests_per_sec: f64,
    pub request_burst: f64,
    /// Pushed transactions per second (sustained) and burst.
    pub pushes_per_sec: f64,
    pub push_burst: f64,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            requests_per_sec: 100.0,
            request_burst: 400.0,
            pushes_per_sec: 20_000.0,
            push_burst: 40_000.0,
        }
    }
}

/// What the driver must do after a penalty.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Ban,
}

#[derive(Debug)]
struct Entry {
    score: i32,
    scored_at: Instant,
    requests: TokenBucket,
    pushes: TokenBucket,
}

/// Scores, rate limits and bans for all peers.
#[derive(Debug, Default)]
pub struct PeerBook {
    limits: PeerLimits,
    peers: HashMap<PeerId, Entry>,
    banned: HashMap<PeerId, Instant>,
}

impl PeerBook {
    pub fn new(limits: PeerLimits) -> Self {
        PeerBook {
            limits,
            ..Default::default()
        }
    }

    fn entry(&mut self, peer: PeerId, now: Instant) -> &mut Entry {
        let l = &self.limits;
        self.peers.entry(peer).or_insert_with(|| Entry {
            score: 0,
            scored_at: now,
            requests: TokenBucket::new(l.requests_per_sec, l.request_burst, now),
            pushes: TokenBucket::new(l.pushes_per_sec, l.push_burst, now),
        })
    }

    /// Applies a penalty (negative) and says whether the peer must now be banned.
    pub fn penalise(&mut self, peer: PeerId, penalty: i32, now: Instant) -> Verdict {
        let e = self.entry(peer, now);
        let secs = now.saturating_duration_since(e.scored_at).as_secs() as i32;
        e.score = (e.score + secs * RECOVERY_PER_SEC).min(0) + penalty;
        e.scored_at = now;
        if e.score <= BAN_THRESHOLD {
            self.peers.remove(&peer);
            self.banned.insert(peer, now + BAN_DURATION);
            Verdict::Ban
        } else {
            Verdict::Keep
        }
    }

    pub fn score(&self, peer: &PeerId) -> i32 {
        self.peers.get(peer).map_or(0, |e| e.score)
    }

    /// Whether a sync request from `peer` is within its rate.
    pub fn allow_request(&mut self, peer: PeerId, now: Instant) -> bool {
        self.entry(peer, now).requests.take(now)
    }

    /// Whether a pushed transaction from `peer` is within its rate.
    pub fn allow_push(&mut self, peer: PeerId, now: Instant) -> bool {
        self.entry(peer, now).pushes.take(now)
    }

    pub fn is_banned(&mut self, peer: &PeerId, now: Instant) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Bans that ended (to lift them in gossipsub too).
    pub fn expired_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let done: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, u)| **u <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &done {
            self.banned.remove(p);
        }
        done
    }

    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }

    pub fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_invalid_data_bans_then_ban_expires() {
        let now = Instant::now();
        let mut book = PeerBook::new(PeerLimits::default());
        let p = PeerId::random();
        for _ in 0..4 {
            assert_eq!(book.penalise(p, PENALTY_INVALID_TX, now), Verdict::Keep);
        }
        assert_eq!(book.penalise(p, PENALTY_INVALID_TX, now), Verdict::Ban);
        assert!(book.is_banned(&p, now));
        assert!(!book.is_banned(&p, now + BAN_DURATION + Duration::from_secs(1)));
    }

    #[test]
    fn score_recovers_over_time() {
        let now = Instant::now();
        let mut book = PeerBook::new(PeerLimits::default());
        let p = PeerId::random();
        for i in 0..20u64 {
            // One bad transaction a minute never adds up to a ban.
            assert_eq!(
                book.penalise(p, PENALTY_INVALID_TX, now + Duration::from_secs(60 * i)),
                Verdict::Keep
            );
        }
    }

    #[test]
    fn rate_limit_refuses_bursts_beyond_the_bucket() {
        let now = Instant::now();
        let limits = PeerLimits {
            requests_per_sec: 10.0,
            request_burst: 20.0,
            ..Default::default()
        };
        let mut book = PeerBook::new(limits);
        let p = PeerId::random();
        let allowed = (0..100).filter(|_| book.allow_request(p, now)).count();
        assert_eq!(allowed, 20);
        assert!(book.allow_request(p, now + Duration::from_millis(150)));
    }
}
