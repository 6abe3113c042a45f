//! Members-only networks (spec: `specs/admission.md`): a node serves gossip, reconciliation,
//! fetches and the ask protocols only to peers whose membership credential it verified. What
//! a credential is and who may issue one is the [`Admission`]'s business (the node): `gossip`
//! only carries the credentials (`/knoop/admit/1`) and keeps non-members out.
//!
//! Keeping a peer out of gossipsub: its application score is [`NON_MEMBER_SCORE`], below the
//! gossip and publish thresholds (nothing is published, forwarded or gossiped to it, and its
//! GRAFTs are refused, so it never enters the mesh) but above the graylist threshold, so that
//! its topic subscriptions are still read and it joins the mesh as soon as it is admitted.

use libp2p::PeerId;

/// Decides who is a member. Implemented by the node.
pub trait Admission: Send + Sync + 'static {
    /// This node's membership credential, sent to every peer.
    fn own_credential(&self) -> String;
    /// Whether `credential` makes `peer` a member now (`Err`: why not). Blocking: called off
    /// the network task, it may fetch a status list.
    fn admit(&self, peer: &PeerId, credential: &str) -> Result<(), String>;
    /// How often an admitted peer's credential is verified again (revocation, expiry).
    fn reverify_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(300)
    }
}

/// The application score of a peer not (yet) admitted.
pub(crate) const NON_MEMBER_SCORE: f64 = -60.0;
