//! Patient privacy for knoop, with no IO of its own.
//!
//! - [`seal`]: the private-transaction construction (spec: `specs/private-transactions.md`):
//!   a payload sealed for DIDs' X25519 `keyAgreement` keys, with anonymous recipient slots, a
//!   padded blob, a committed content key and the fetch token that proves a requester can read
//!   it. The node stores, fetches and routes; this crate only computes.
//! - [`inner`]: the signed inner message inside the sealed blob (author, recipients, body).
//!
//! - [`patient`]: patient identifiers (BSN) and the keys derived from them with a peppered
//!   Argon2id; [`locator`]: the localisation index's slot tags and encrypted entries (spec:
//!   `specs/consent-localisation.md`).

pub mod inner;
pub mod locator;
pub mod patient;
pub mod seal;

pub use seal::{
    ephemeral, open, open_symmetric, seal, trial_open, Descriptor, PrivateError, Recipient, Sealed,
    PRIVATE_CONTENT_TYPE,
};

/// The answer of a fetch for a blob the requester may not have or that is not here: the CBOR
/// map `{"m": null}`, the same bytes whether or not the blob is held.
pub const MISS: [u8; 4] = [0xa1, 0x61, 0x6d, 0xf6];
