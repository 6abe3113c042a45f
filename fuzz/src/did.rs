//! DIDs, DID URLs and DID operations (`specs/did-knoop.md`, `specs/did-web.md`,
//! `specs/did-x509.md`), did:key and did:jwk, and the node binding of a DID document.

use knoop_did::binding::NodeBinding;
use knoop_did::knoop::op::DidOp;
use knoop_did::url::{Did, DidUrl};

/// A DID or DID URL as a user or a credential names it.
pub fn did_url(data: &[u8]) {
    let Some(s) = super::text(data) else {
        return;
    };
    if let Ok(did) = Did::parse(s) {
        assert_eq!(
            Did::parse(did.as_str()).ok().map(|d| d.to_string()),
            Some(did.to_string())
        );
        let _ = (did.method(), did.method_specific_id());
    }
    if let Ok(url) = DidUrl::parse(s) {
        let _ = url.param("versionId");
    }
    let _ = knoop_did::document::decode_multibase_key(s);
}

/// A did:knoop operation: the content of a DID transaction. What parses encodes to bytes that
/// parse to the same operation.
pub fn did_op(data: &[u8]) {
    if let Ok(op) = DidOp::parse(data) {
        let again = DidOp::parse(&op.to_bytes()).map(|o| o.to_bytes());
        assert_eq!(again.ok(), Some(op.to_bytes()));
    }
}

/// did:key and did:jwk, which resolve from the identifier alone.
pub fn did_key_jwk(data: &[u8]) {
    let Some(s) = super::text(data) else {
        return;
    };
    let _ = knoop_did::external::resolve_did_key(s);
    let _ = knoop_did::external::resolve_did_jwk(s);
}

/// A did:x509 (the first line) and its certificate chain (the rest: DER certificates, each
/// preceded by its length in two bytes, big-endian), resolved as a signature's `x5c` is.
pub fn did_x509(data: &[u8]) {
    let (did, rest) = super::split_line(data);
    let Some(did) = super::text(did) else {
        return;
    };
    let _ = knoop_did::x509::parse(did);
    let mut chain = Vec::new();
    let mut rest = rest.unwrap_or_default();
    while rest.len() >= 2 && chain.len() < 8 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let end = (2 + len).min(rest.len());
        chain.push(rest[2..end].to_vec());
        rest = &rest[end..];
    }
    // At the vectors' resolution time (`specs/vectors/did-x509.json` `resolve_at`).
    let _ = knoop_did::x509::resolve(did, &chain, 1_811_808_000);
}

/// The `KnoopNode` service endpoint of a DID document (a peer id bound by its signature).
pub fn node_binding(data: &[u8]) {
    if let Ok(b) = serde_json::from_slice::<NodeBinding>(data) {
        let _ = b.verify("did:knoop:4Pd4h9CoNrCCu5QPupW7pEyPzh3AuxrR5mR1LDGiAhz8");
    }
}
