//! The node's front doors. Each handler parses a request, calls one service method and maps
//! the result: the internal JSON RPC ([`rpc`], loopback by default, documented in
//! `api/openapi.yaml`), the public API other nodes call ([`public`]: OAuth2 and the FHIR data
//! proxy over HTTPS), and the answers to other nodes' libp2p requests ([`answers`]).

pub mod admin_directory_reads;
pub mod answers;
pub mod fhir_answer;
pub mod public;
pub mod rpc;
