//! Identity services: the keystore and the node's identity key, every `did:knoop` DID (state
//! from the log, operations on hosted DIDs), resolvers for all supported methods (with the
//! did:web client), issuing credentials and presentations, credentials with their trust and
//! revocations, status lists and the prefetch of what a verification needs from the web, and
//! the did:web ids and documents of the DIDs hosted here.

pub mod credential_offers;
pub mod credentials;
pub mod did_ops;
pub mod did_state;
pub mod didweb;
pub mod issuing;
pub mod keystore;
pub mod membership;
pub mod node_key;
pub mod prefetch;
pub mod resolver;
pub mod status_hosting;
pub mod status_list;
pub mod web_dids;
pub mod web_id;
