//! knoop-did: decentralised identifiers for knoop, with no IO of its own.
//!
//! - [`url`]: DID and DID URL syntax (W3C DID Core), strict and bounded.
//! - [`document`]: the DID document model knoop writes and reads.
//! - [`knoop`]: the `did:knoop` method (spec: `specs/did-knoop.md`): self-certifying ids,
//!   create/update/deactivate operations carried as log transactions, the deterministic rule that
//!   settles concurrent updates, version history, and who may sign what at a point in causal order.
//! - [`binding`]: the proof that binds a node's libp2p peer id to its DID.
//! - [`external`]: `did:key`, `did:jwk` (through `ssi`) and the `did:web` URL mapping.
//! - [`resolution`]: W3C DID Resolution result shapes and error codes.
//! - [`x509`]: `did:x509`, resolved with the certificate chain that comes with a signature.
//!
//! The node supplies storage, networking (did:web over HTTPS) and key custody.

pub mod binding;
pub mod document;
pub mod external;
pub mod knoop;
pub mod resolution;
pub mod url;
pub mod x509;
