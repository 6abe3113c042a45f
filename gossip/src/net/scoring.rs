//! Gossipsub peer scoring (`specs/sync.md` §5.1), on in every network. Two of its parts count:
//!
//! - the application score: in a members-only network a peer not (yet) admitted has
//!   [`NON_MEMBER_SCORE`](super::admission) there, below the gossip and publish thresholds
//!   (nothing is published, forwarded or gossiped to it, and its GRAFTs are refused) but above
//!   the graylist threshold (its subscriptions are still read, so it joins the mesh once
//!   admitted);
//! - invalid messages on the transaction topic (P4): a message gossipsub itself refuses (one
//!   signed although the topic is anonymous, one that does not decode) or that the node rejects
//!   counts `-10 × n²`, decaying by half every second. A peer whose score falls to the graylist
//!   threshold is banned by the driver ([`should_ban`]), as for any other invalid data: junk in
//!   gossipsub's signed mode, which never reaches the node's own checks, is no longer free.
//!
//! Everything else gossipsub can score is off: time in mesh, first and mesh deliveries and
//! broken promises would penalise honest nodes that are merely quiet or slow, and IP colocation
//! would penalise a vendor's many nodes behind one address.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicHash, TopicScoreParams};

use crate::wire::TX_TOPIC;

/// The scoring parameters and thresholds.
pub(crate) fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..TopicScoreParams::default()
    };
    let mut topics = HashMap::new();
    topics.insert(
        TopicHash::from_raw(
            libp2p::gossipsub::IdentTopic::new(TX_TOPIC)
                .hash()
                .into_string(),
        ),
        topic,
    );
    let params = PeerScoreParams {
        topics,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: 0.0,
        decay_interval: Duration::from_secs(1),
        ..PeerScoreParams::default()
    };
    (params, PeerScoreThresholds::default())
}

/// The penalty (in the node's own book, `peers.rs`) of a peer gossipsub graylisted: a ban.
pub(crate) const GRAYLISTED_PENALTY: i32 = -1000;

/// Whether a peer with gossipsub score `score` is to be banned (at or below the graylist
/// threshold: gossipsub already ignores it).
pub(crate) fn should_ban(score: f64) -> bool {
    score <= PeerScoreThresholds::default().graylist_threshold
}

#[cfg(test)]
mod tests {
    use super::super::admission::NON_MEMBER_SCORE;
    use super::*;

    #[test]
    fn the_parameters_are_valid() {
        let (params, t) = score_params();
        assert!(params.validate().is_ok(), "{:?}", params.validate());
        assert!(t.validate().is_ok());
    }

    #[test]
    fn a_non_member_is_below_gossip_and_publish_but_not_banned() {
        let (params, t) = score_params();
        let score = NON_MEMBER_SCORE * params.app_specific_weight;
        assert!(score < t.publish_threshold && score < t.gossip_threshold);
        assert!(score > t.graylist_threshold);
        assert!(!should_ban(score));
    }

    #[test]
    fn a_burst_of_three_invalid_messages_bans_and_one_does_not() {
        let (params, _) = score_params();
        let w = params
            .topics
            .values()
            .next()
            .unwrap()
            .invalid_message_deliveries_weight;
        assert!(!should_ban(w * 1.0), "one invalid message");
        assert!(!should_ban(w * 4.0), "two");
        assert!(should_ban(w * 9.0), "three");
    }
}
