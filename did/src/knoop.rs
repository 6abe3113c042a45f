//! The `did:knoop` method (spec: `specs/did-knoop.md`).
//!
//! - [`id`]: self-certifying identifiers, derived from the inception key.
//! - [`op`]: create / update / deactivate operations, the content of DID transactions.
//! - [`history`]: every version of one DID, and the rule that settles concurrent updates.
//! - [`registry`]: all DIDs a node knows, and who may sign what at a point in causal order.
//! - [`services`]: "endpoint of type T for DID X", following references to hosting nodes.
//! - [`time`]: RFC 3339 timestamps for metadata and `versionTime`.

pub mod history;
pub mod id;
pub mod op;
pub mod registry;
pub mod services;
pub mod time;

pub use history::{DidHistory, OpRecord};
pub use id::{did_for_key, VersionId, METHOD};
pub use op::{DidOp, OpError, DID_OP_CONTENT_TYPE};
pub use registry::{AuthError, CausalOracle, Registry, SignerKid, TxFacts};
