//! The node's answers to the protocols it decides itself (`/knoop/private/1`,
//! `/knoop/locate/1`, `/knoop/patient/1`): the network task hands each request here, off its own loop.

use std::sync::Arc;

use knoop_gossip::net::{AskProtocol, Responder};
use libp2p::PeerId;

/// Dispatches requests to the module that owns the protocol.
pub struct Answers {
    pub private: Arc<crate::care::private::Private>,
    pub localisation: Arc<crate::care::localisation::Localisation>,
    pub patients: Arc<crate::care::patient_access::PatientAccess>,
}

impl Responder for Answers {
    fn respond(&self, peer: &PeerId, protocol: AskProtocol, request: &[u8]) -> Vec<u8> {
        match protocol {
            AskProtocol::Private => self.private.answer(peer, request),
            AskProtocol::Locate => self.localisation.answer(peer, request),
            AskProtocol::Patient => self.patients.answer(peer, request),
        }
    }
}
