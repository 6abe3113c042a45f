//! Verifiable credentials for knoop: the W3C VC data model, Data Integrity and JOSE proofs,
//! status lists and verification, with no IO of its own.
//!
//! Specs: [VC Data Model 2.0](https://www.w3.org/TR/vc-data-model-2.0/) (1.1 documents are
//! accepted too) and [Data Integrity EdDSA Cryptosuites](https://www.w3.org/TR/vc-di-eddsa/).
//!
//! - [`proof`] creates and verifies Data Integrity proofs with `eddsa-jcs-2022` (JSON
//!   canonicalisation, RFC 8785: cheap, the one to use on hot paths) and `eddsa-rdfc-2022`
//!   (RDF canonicalisation of the JSON-LD document: about a millisecond per proof, needed to
//!   interoperate with issuers that use it). Keys are found through a caller-supplied function
//!   from `verificationMethod` to an Ed25519 key, so DID resolution stays with the caller.
//! - [`model`] checks that a document is a well-formed credential or presentation, optionally
//!   with JSON-LD semantics (every term defined, no protected term redefined).
//! - [`contexts`] is the JSON-LD document loader: only bundled contexts, never the network.
//! - [`canon`] holds the two canonicalisations; [`xsd`] the date-time syntax both need.
//! - [`types`]: knoop's credential types (care organisation, healthcare professional), their
//!   bundled context and schema checks; [`verify`]: the full verification of one credential
//!   (model, schema, proof by the issuer's key at issuance, validity, revocation, trust);
//!   [`presentation`]: presentations bound to a verifier's challenge and domain.
//! - [`jose`]: credentials secured as a JWS with EdDSA (`vc+jwt`, and VC 1.1 JWTs);
//!   [`status`]: Bitstring Status List entries and lists; [`jws`]: JWS and JWK for every
//!   algorithm knoop verifies; [`dezi`]: the `DeziUserCredential` around a Dezi attestation.
//!
//! Proofs and the data model are checked independently: a verifier calls both.

pub mod canon;
pub mod contexts;
pub mod dezi;
pub mod exchange;
pub mod jose;
pub mod jws;
pub mod model;
pub mod presentation;
pub mod proof;
pub mod status;
pub mod types;
pub mod verify;
pub mod xsd;

pub use contexts::Contexts;
pub use model::{ModelError, Strictness};
pub use proof::{Cryptosuite, ProofError, ProofOptions, VerifiedProof};
