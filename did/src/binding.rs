//! Node identity: binding a node's libp2p peer id to its DID.
//!
//! The node DID's document carries a `KnoopNode` service whose endpoint holds the peer id and a
//! proof: the peer key's Ed25519 signature over `knoop-node-binding/v1:<did>`. The DID's
//! controller vouches for the peer id (it published the document), and the peer key vouches for
//! the DID (the proof), so neither can be claimed by someone else. Peers learn which operator
//! they talk to by finding the DID whose `KnoopNode` service names the peer id they connected to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::document::{DidDocument, Service};

/// Service type of a node binding.
pub const NODE_SERVICE_TYPE: &str = "KnoopNode";

/// The endpoint of a `KnoopNode` service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBinding {
    pub peer_id: String,
    /// base64url (no padding) Ed25519 signature by the peer key over the binding message.
    pub proof: String,
    /// Listen addresses (multiaddrs) the node advertises, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// Why a binding does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node binding: {0}")]
pub struct BindingError(pub &'static str);

/// The signed message.
pub fn binding_message(did: &str) -> Vec<u8> {
    format!("knoop-node-binding/v1:{did}").into_bytes()
}

/// Signs a binding of `did` with the peer key.
pub fn sign_binding(did: &str, peer_key: &SigningKey, addresses: Vec<String>) -> NodeBinding {
    let sig = peer_key.sign(&binding_message(did));
    NodeBinding {
        peer_id: peer_id_of(&peer_key.verifying_key()),
        proof: B64.encode(sig.to_bytes()),
        addresses,
    }
}

/// The libp2p peer id (base58btc identity multihash of the protobuf public key) of an Ed25519
/// key: the `12D3KooW...` form.
pub fn peer_id_of(key: &VerifyingKey) -> String {
    let mut b = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
    b.extend_from_slice(key.as_bytes());
    bs58::encode(b).into_string()
}

/// The Ed25519 key inside a `12D3KooW...` peer id.
pub fn peer_key(peer_id: &str) -> Result<VerifyingKey, BindingError> {
    let b = bs58::decode(peer_id)
        .into_vec()
        .map_err(|_| BindingError("peer id is not base58btc"))?;
    if b.len() != 38 || b[..6] != [0x00, 36, 0x08, 0x01, 0x12, 0x20] {
        return Err(BindingError("peer id is not an inline Ed25519 key"));
    }
    let raw: [u8; 32] = b[6..]
        .try_into()
        .map_err(|_| BindingError("peer id key length"))?;
    VerifyingKey::from_bytes(&raw).map_err(|_| BindingError("peer id key is not a valid point"))
}

impl NodeBinding {
    /// Checks the proof for `did`.
    pub fn verify(&self, did: &str) -> Result<(), BindingError> {
        let key = peer_key(&self.peer_id)?;
        let raw = B64
            .decode(&self.proof)
            .map_err(|_| BindingError("proof is not base64url"))?;
        let sig = Signature::from_slice(&raw).map_err(|_| BindingError("proof length"))?;
        key.verify(&binding_message(did), &sig)
            .map_err(|_| BindingError("proof does not verify"))
    }

    pub fn service(&self, did: &str) -> Service {
        Service {
            id: format!("{did}#node"),
            type_: NODE_SERVICE_TYPE.into(),
            service_endpoint: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

/// The verified binding in a document, if any.
pub fn binding_in(doc: &DidDocument) -> Option<NodeBinding> {
    let s = doc.service_of_type(NODE_SERVICE_TYPE)?;
    let b: NodeBinding = serde_json::from_value(s.service_endpoint.clone()).ok()?;
    b.verify(&doc.id).ok()?;
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_verifies_only_for_its_did() {
        let peer = SigningKey::from_bytes(&[5; 32]);
        let b = sign_binding("did:knoop:a", &peer, vec![]);
        assert!(b.peer_id.starts_with("12D3KooW"));
        b.verify("did:knoop:a").unwrap();
        assert!(b.verify("did:knoop:b").is_err());
        let mut forged = b.clone();
        forged.peer_id = peer_id_of(&SigningKey::from_bytes(&[6; 32]).verifying_key());
        assert!(forged.verify("did:knoop:a").is_err());
        assert!(peer_key("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").is_err());
        assert!(peer_key("not-base58-0OIl").is_err());
        let mut d = DidDocument::new("did:knoop:a");
        d.service.push(b.service("did:knoop:a"));
        assert_eq!(binding_in(&d), Some(b));
    }
}
