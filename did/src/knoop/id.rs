//! Identifiers: `did:knoop:<base58btc(SHA-256(0xed 0x01 ‖ inception public key))>`, and version
//! ids (the id of the transaction that carried a DID operation).

use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The method name.
pub const METHOD: &str = "knoop";

/// The DID whose inception key is `key`.
pub fn did_for_key(key: &VerifyingKey) -> String {
    let mut h = Sha256::new();
    h.update([0xed, 0x01]);
    h.update(key.as_bytes());
    format!("did:{METHOD}:{}", bs58::encode(h.finalize()).into_string())
}

/// A version of a DID: the id (SHA-256 of the envelope) of the transaction that carried the
/// operation. Written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VersionId(pub [u8; 32]);

impl VersionId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(VersionId(out))
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl Serialize for VersionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for VersionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        VersionId::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("version id must be 64 lowercase hex digits"))
    }
}
