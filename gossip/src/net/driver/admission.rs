//! The driver's side of members-only networks (spec: `specs/admission.md`): sending this
//! node's membership credential to every knoop peer, verifying theirs (off the network task,
//! through the node's [`Admission`]), and the checks that keep non-members out.

use std::time::Instant;

use libp2p::request_response::{self, ResponseChannel};
use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::{Done, Driver};
use crate::net::admission::NON_MEMBER_SCORE;
use crate::net::peers::PENALTY_INVALID_TX;
use crate::store::Store;
use crate::wire::{AdmitRequest, AdmitResponse};

impl<S: Store + ?Sized> Driver<S> {
    /// Whether this node admits only members.
    pub(super) fn members_only(&self) -> bool {
        self.admission.is_some()
    }

    /// Whether `peer` is served: every peer of an open network, a verified member otherwise.
    pub(super) fn is_member(&self, peer: &PeerId) -> bool {
        !self.members_only() || self.peers.get(peer).is_some_and(|s| s.member)
    }

    /// A new connection: a members-only node keeps the peer out of gossipsub until admitted.
    pub(super) fn admission_on_connect(&mut self, peer: PeerId) {
        if self.members_only() && !self.is_member(&peer) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&peer, NON_MEMBER_SCORE);
        }
    }

    /// A knoop peer identified itself: send it this node's credential (once per connection).
    pub(super) fn admission_on_identify(&mut self, peer: PeerId) {
        let Some(admission) = self.admission.clone() else {
            return;
        };
        let Some(st) = self.peers.get_mut(&peer) else {
            return;
        };
        if st.admit_asked {
            return;
        }
        st.admit_asked = true;
        let request = AdmitRequest {
            credential: admission.own_credential(),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .admit
            .send_request(&peer, request);
        self.admit_outbound.insert(id, peer);
    }

    pub(super) fn on_admit(&mut self, ev: request_response::Event<AdmitRequest, AdmitResponse>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_admit_request(peer, request.credential, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    self.admit_outbound.remove(&request_id);
                    match response {
                        AdmitResponse::Admitted(credential) => {
                            if let Some(st) = self.peers.get_mut(&peer) {
                                st.admits_us = true;
                            }
                            // A peer whose own request has not come (or not yet): its answer
                            // carries its credential too.
                            if !self.is_member(&peer) && !credential.is_empty() {
                                self.verify_member(peer, credential, None);
                            }
                        }
                        AdmitResponse::Refused(why) => {
                            warn!(%peer, %why, "peer refused this node's membership credential");
                        }
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.admit_outbound.remove(&request_id);
                debug!(%peer, %error, "admission request failed");
                // Sent again at the peer's next identify (every 5 minutes, or when it
                // reconnects), not at once: a peer that cannot answer would loop.
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.admit_asked = false;
                }
            }
            _ => {}
        }
    }

    fn on_admit_request(
        &mut self,
        peer: PeerId,
        credential: String,
        channel: ResponseChannel<AdmitResponse>,
    ) {
        if self.admission.is_none() {
            // An open network serves everyone: nothing to verify, no credential to give.
            let _ = self
                .swarm
                .behaviour_mut()
                .admit
                .send_response(channel, AdmitResponse::Admitted(String::new()));
            return;
        }
        if !self.book.allow_request(peer, Instant::now()) {
            let _ = self
                .swarm
                .behaviour_mut()
                .admit
                .send_response(channel, AdmitResponse::Refused("rate_limited".into()));
            return;
        }
        self.verify_member(peer, credential, Some(channel));
    }

    /// Verifies `credential` for `peer` off the network task; the verdict comes back as
    /// [`Done::Admitted`] (answered on `channel`, when the peer asked).
    pub(super) fn verify_member(
        &self,
        peer: PeerId,
        credential: String,
        channel: Option<ResponseChannel<AdmitResponse>>,
    ) {
        let Some(admission) = self.admission.clone() else {
            return;
        };
        let done = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let verdict = admission.admit(&peer, &credential);
            let _ = done.blocking_send(Done::Admitted {
                peer,
                credential,
                verdict,
                channel,
            });
        });
    }

    pub(super) fn on_admitted(
        &mut self,
        peer: PeerId,
        credential: String,
        verdict: Result<(), String>,
        channel: Option<ResponseChannel<AdmitResponse>>,
    ) {
        let own = self
            .admission
            .as_ref()
            .map(|a| a.own_credential())
            .unwrap_or_default();
        match verdict {
            Ok(()) => {
                let Some(st) = self.peers.get_mut(&peer) else {
                    return;
                };
                let first = !st.member;
                st.member = true;
                st.credential = Some(credential);
                st.admitted_at = Some(Instant::now());
                let addrs = st.listen_addrs.clone();
                if first {
                    info!(%peer, "peer admitted: a member of the network");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .set_application_score(&peer, 0.0);
                    for a in addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer, a);
                    }
                }
                if let Some(ch) = channel {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .admit
                        .send_response(ch, AdmitResponse::Admitted(own));
                }
            }
            Err(why) => {
                warn!(%peer, %why, "peer is not a member of the network; disconnecting");
                if let Some(ch) = channel {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .admit
                        .send_response(ch, AdmitResponse::Refused("not_a_member".into()));
                }
                self.penalise(peer, PENALTY_INVALID_TX, "not a member");
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.member = false;
                }
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// This node's credential was renewed (`specs/admission.md` §5): send the new one to every
    /// peer that got the old one.
    fn resend_if_renewed(&mut self) {
        let Some(admission) = self.admission.clone() else {
            return;
        };
        let own = admission.own_credential();
        if own == self.sent_credential {
            return;
        }
        self.sent_credential = own;
        let peers: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(_, s)| s.admit_asked)
            .map(|(p, s)| {
                s.admit_asked = false;
                *p
            })
            .collect();
        info!(
            peers = peers.len(),
            "membership credential renewed: sending it to the peers"
        );
        for peer in peers {
            self.admission_on_identify(peer);
        }
    }

    /// Verifies again the credentials of members admitted (or verified) longer ago than the
    /// admission's interval: a revoked or expired one cuts the peer off. Sends a renewed
    /// credential of this node first.
    pub(super) fn reverify_members(&mut self, now: Instant) {
        self.resend_if_renewed();
        let Some(every) = self.admission.as_ref().map(|a| a.reverify_every()) else {
            return;
        };
        let due: Vec<(PeerId, String)> = self
            .peers
            .iter_mut()
            .filter(|(_, s)| {
                s.member
                    && s.admitted_at
                        .is_some_and(|t| now.duration_since(t) >= every)
            })
            .filter_map(|(p, s)| {
                s.admitted_at = Some(now);
                s.credential.clone().map(|c| (*p, c))
            })
            .collect();
        for (peer, credential) in due {
            self.verify_member(peer, credential, None);
        }
    }
}
