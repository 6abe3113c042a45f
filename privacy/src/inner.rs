//! The inner message of a private transaction (spec: `specs/private-transactions.md` §3.3):
//! the body, its content type, the author's key, the recipient DIDs and the transaction's
//! ephemeral key, signed by the author. Only participants ever see it (it travels sealed).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::seal::{PrivateError, MAX_INNER};

/// Largest body.
pub const MAX_BODY: usize = 245_760;
/// Most recipient DIDs.
pub const MAX_TO: usize = 63;
const SIGNING_PREFIX: &[u8] = b"knoop/private/1 inner\x00";

/// What the author signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedInner {
    pub v: u8,
    /// The author's key, `<did>?versionId=<v>#<fragment>`.
    pub kid: String,
    /// Content type of the body.
    pub cty: String,
    /// Recipient DIDs, strictly ascending.
    pub to: Vec<String>,
    pub epk: ByteBuf,
    /// Author's time, Unix ms.
    pub iat: u64,
    pub body: ByteBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InnerWire {
    s: ByteBuf,
    g: ByteBuf,
}

impl SignedInner {
    /// The author's DID (the `kid` before `?` or `#`).
    pub fn author(&self) -> &str {
        self.kid.split(['?', '#']).next().unwrap_or_default()
    }

    fn check(&self) -> Result<(), PrivateError> {
        let bad = |m: &str| PrivateError::Descriptor(format!("inner message: {m}"));
        if self.v != 1 {
            return Err(bad("unknown version"));
        }
        if self.kid.is_empty() || self.kid.len() > 512 {
            return Err(bad("kid must be 1..512 bytes"));
        }
        if self.cty.is_empty()
            || self.cty.len() > 128
            || !self.cty.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(bad("cty must be 1..128 printable ASCII bytes"));
        }
        if self.to.is_empty() || self.to.len() > MAX_TO {
            return Err(bad("to must name 1..63 DIDs"));
        }
        if self.to.iter().any(|d| d.is_empty() || d.len() > 256)
            || self.to.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(bad(
                "to must be strictly ascending DIDs of at most 256 bytes",
            ));
        }
        if self.epk.len() != 32 {
            return Err(bad("epk must be 32 bytes"));
        }
        if self.body.len() > MAX_BODY {
            return Err(PrivateError::TooLarge);
        }
        Ok(())
    }

    /// Signs and encodes the inner message.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, PrivateError> {
        self.check()?;
        let signed = cbor4ii::serde::to_vec(Vec::new(), self)
            .map_err(|e| PrivateError::Descriptor(e.to_string()))?;
        let sig = key.sign(&[SIGNING_PREFIX, &signed].concat());
        let out = cbor4ii::serde::to_vec(
            Vec::new(),
            &InnerWire {
                s: ByteBuf::from(signed),
                g: ByteBuf::from(sig.to_bytes().to_vec()),
            },
        )
        .map_err(|e| PrivateError::Descriptor(e.to_string()))?;
        if out.len() > MAX_INNER {
            return Err(PrivateError::TooLarge);
        }
        Ok(out)
    }
}

/// A parsed inner message whose signature is still to be checked against the author's key.
#[derive(Clone, Debug)]
pub struct Inner {
    pub signed: SignedInner,
    signed_bytes: Vec<u8>,
    signature: [u8; 64],
}

impl Inner {
    /// Parses the inner message (strictly: canonical encoding, known members, limits).
    pub fn parse(bytes: &[u8]) -> Result<Self, PrivateError> {
        let bad = |m: String| PrivateError::Descriptor(format!("inner message: {m}"));
        let wire: InnerWire = cbor4ii::serde::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let signed: SignedInner =
            cbor4ii::serde::from_slice(&wire.s).map_err(|e| bad(e.to_string()))?;
        signed.check()?;
        let again = cbor4ii::serde::to_vec(Vec::new(), &signed).map_err(|e| bad(e.to_string()))?;
        if again != wire.s.as_slice() {
            return Err(bad("not the canonical encoding".into()));
        }
        let signature: [u8; 64] = wire
            .g
            .as_slice()
            .try_into()
            .map_err(|_| bad("the signature must be 64 bytes".into()))?;
        Ok(Inner {
            signed,
            signed_bytes: wire.s.into_vec(),
            signature,
        })
    }

    /// Checks the author's signature (strict Ed25519).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &[SIGNING_PREFIX, &self.signed_bytes].concat(),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> SignedInner {
        SignedInner {
            v: 1,
            kid: "did:knoop:gp?versionId=00#key-1".into(),
            cty: "application/vc".into(),
            to: vec!["did:knoop:a".into(), "did:knoop:b".into()],
            epk: ByteBuf::from(vec![9; 32]),
            iat: 1_767_225_600_000,
            body: ByteBuf::from(b"{}".to_vec()),
        }
    }

    #[test]
    fn signs_parses_and_verifies() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let bytes = msg().sign(&key).unwrap();
        let inner = Inner::parse(&bytes).unwrap();
        assert_eq!(inner.signed, msg());
        assert_eq!(inner.signed.author(), "did:knoop:gp");
        assert!(inner.verify(&key.verifying_key()));
        assert!(!inner.verify(&SigningKey::from_bytes(&[3; 32]).verifying_key()));
    }

    #[test]
    fn bad_messages_are_refused() {
        let key = SigningKey::from_bytes(&[2; 32]);
        let mut unsorted = msg();
        unsorted.to.reverse();
        assert!(unsorted.sign(&key).is_err());
        let mut short = msg();
        short.epk = ByteBuf::from(vec![1; 31]);
        assert!(short.sign(&key).is_err());
        assert!(Inner::parse(b"\xa0").is_err());
        let mut bytes = msg().sign(&key).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = Inner::parse(&bytes).unwrap();
        assert!(!tampered.verify(&key.verifying_key()));
    }
}
