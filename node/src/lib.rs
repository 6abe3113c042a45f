//! # knoop-node: the node library under the `knoop` binary
//!
//! Layers, each importing only from the layers below it (checked by `tests/layers.rs`):
//!
//! ```text
//! cli, node        the command line; the builder that wires the services and runs a node
//!   api            front doors: the internal RPC, the public API (OAuth2, FHIR), answers to peers
//!     care         consent, localisation, tokens and policy, data proxy, fetch, audit, private tx
//!     directory    the care directory: organisations, endpoints, and mCSD over them
//!       identity   DIDs (state, operations, resolvers, did:web), keys, credentials, status lists
//!         ops      metrics, rate limits, backup
//!           config, store, indexing, https      settings, rocksdb, log indexers, HTTPS client
//! ```
//!
//! Below all of them are the library crates: `knoop-gossip` (the replicated log and its
//! network), `knoop-did`, `knoop-vc` and `knoop-privacy`. Services take their dependencies
//! explicitly and return typed errors; a handler in [`api`] parses a request, calls one service
//! method and maps the result to HTTP.

pub mod api;
pub mod care;
pub mod cli;
pub mod config;
pub mod directory;
pub mod https;
pub mod identity;
pub mod indexing;
pub mod node;
pub mod ops;
pub mod store;
