//! The transaction format (spec: `specs/transaction.md`).
//!
//! A transaction is a compact JWS (RFC 7515) signed with EdDSA/Ed25519 whose payload is the
//! lowercase hex SHA-256 of the content. The content travels beside the envelope, so it can be
//! withheld (private transactions) without changing the transaction's identity. The id of a
//! transaction is the SHA-256 of the envelope's ASCII bytes.
//!
//! The JWS is parsed by hand rather than through a JOSE crate: ingest runs this parser at tens of
//! thousands of transactions per second, it must be strict (one encoding per transaction, because
//! the id hashes the bytes), and signatures are checked in batches.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::TxError;

/// Largest envelope (the compact JWS) accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;
/// Largest content (payload) accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Most causal parents a transaction may name.
pub const MAX_PREVS: usize = 16;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 128;
/// Longest key reference (`kid`), in bytes.
pub const MAX_KID_BYTES: usize = 512;
/// The `typ` every transaction header carries.
pub const TX_TYP: &str = "knoop-tx+jws";
/// The only signature algorithm.
pub const TX_ALG: &str = "EdDSA";

/// A 32-byte SHA-256 identifier (of an envelope, or of content).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash32(pub [u8; 32]);

/// The id of a transaction: SHA-256 of its envelope.
pub type TxId = Hash32;

impl Hash32 {
    pub fn of(bytes: &[u8]) -> Self {
        Hash32(Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self, TxError> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(TxError::Malformed("hash must be 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| TxError::Malformed("hash must be 64 lowercase hex digits"))?;
        Ok(Hash32(out))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash32::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 public key embedded in a header, as an RFC 8037 OKP JWK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
}

impl Jwk {
    pub fn from_key(key: &VerifyingKey) -> Self {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: B64.encode(key.as_bytes()),
        }
    }

    pub fn to_key(&self) -> Result<VerifyingKey, TxError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(TxError::Malformed("jwk must be an OKP Ed25519 key"));
        }
        let raw = B64
            .decode(&self.x)
            .map_err(|_| TxError::Malformed("jwk x is not base64url"))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| TxError::Malformed("jwk x must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| TxError::Malformed("jwk x is not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(TxError::Malformed("jwk x is a weak (small-order) key"));
        }
        Ok(key)
    }
}

/// The protected header of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub alg: String,
    pub typ: String,
    /// Content type of the payload (a media type such as `application/did+json`).
    pub cty: String,
    /// Embedded signing key. Exactly one of `jwk` and `kid` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Jwk>,
    /// Reference to the signing key (a DID URL), resolved by the [`crate::Authorizer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Signing time, Unix time in milliseconds.
    pub sigt: u64,
    /// Lamport clock: 1 + the largest `lc` among `prevs`, 0 for a transaction without parents.
    pub lc: u64,
    /// Causal parents: ids of earlier transactions, sorted ascending, no repeats.
    pub prevs: Vec<TxId>,
}

impl Header {
    fn check(&self) -> Result<(), TxError> {
        if self.alg != TX_ALG {
            return Err(TxError::Malformed("alg must be EdDSA"));
        }
        if self.typ != TX_TYP {
            return Err(TxError::Malformed("typ must be knoop-tx+jws"));
        }
        if self.cty.is_empty()
            || self.cty.len() > MAX_CONTENT_TYPE_BYTES
            || !self.cty.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TxError::Malformed(
                "cty must be 1..=128 printable ASCII characters",
            ));
        }
        match (&self.jwk, &self.kid) {
            (Some(_), None) => {}
            (None, Some(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => {}
            _ => {
                return Err(TxError::Malformed(
                    "exactly one of jwk and kid must be present",
                ))
            }
        }
        if self.prevs.len() > MAX_PREVS {
            return Err(TxError::Malformed("too many prevs (at most 16)"));
        }
        if !self.prevs.windows(2).all(|w| w[0] < w[1]) {
            return Err(TxError::Malformed(
                "prevs must be sorted ascending without repeats",
            ));
        }
        if self.prevs.is_empty() && self.lc != 0 {
            return Err(TxError::Malformed("lc must be 0 without prevs"));
        }
        if !self.prevs.is_empty() && self.lc == 0 {
            return Err(TxError::Malformed("lc must be at least 1 with prevs"));
        }
        Ok(())
    }
}

/// A parsed, well-formed transaction. Construct with [`Transaction::parse`] or
/// [`TxBuilder::sign`]; the signature is checked separately ([`Transaction::verify_signature`] or
/// [`verify_batch`]) so that ingest can verify many at once.
#[derive(Clone, Debug)]
pub struct Transaction {
    id: TxId,
    envelope: String,
    header: Header,
    payload_hash: Hash32,
    /// Offset of the second `.` in the envelope: signing input is `envelope[..dot2]`.
    dot2: usize,
    signature: Signature,
    payload: Option<Vec<u8>>,
}

impl Transaction {
    /// Parses an envelope and (optionally) its content, checking everything but the signature and
    /// the causal references.
    pub fn parse(envelope: &str, payload: Option<Vec<u8>>) -> Result<Self, TxError> {
        if envelope.len() > MAX_ENVELOPE_BYTES {
            return Err(TxError::TooLarge {
                what: "envelope",
                max: MAX_ENVELOPE_BYTES,
            });
        }
        if let Some(p) = &payload {
            if p.len() > MAX_PAYLOAD_BYTES {
                return Err(TxError::TooLarge {
                    what: "payload",
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        let mut parts = envelope.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TxError::Malformed(
                "envelope must be a compact JWS with three parts",
            ));
        };
        let header_json =
            decode_b64(h64).ok_or(TxError::Malformed("header is not canonical base64url"))?;
        let header: Header = serde_json::from_slice(&header_json)
            .map_err(|_| TxError::Malformed("header is not a valid transaction header"))?;
        header.check()?;
        let hash_hex = decode_b64(p64).ok_or(TxError::Malformed(
            "payload hash is not canonical base64url",
        ))?;
        let hash_hex = std::str::from_utf8(&hash_hex)
            .map_err(|_| TxError::Malformed("payload hash is not hex"))?;
        let payload_hash = Hash32::from_hex(hash_hex)?;
        let sig =
            decode_b64(s64).ok_or(TxError::Malformed("signature is not canonical base64url"))?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| TxError::Malformed("signature must be 64 bytes"))?;
        if let Some(p) = &payload {
            if Hash32::of(p) != payload_hash {
                return Err(TxError::PayloadMismatch);
            }
        }
        Ok(Transaction {
            id: Hash32::of(envelope.as_bytes()),
            envelope: envelope.to_owned(),
            header,
            payload_hash,
            dot2: h64.len() + 1 + p64.len(),
            signature: Signature::from_bytes(&sig),
            payload,
        })
    }

    pub fn id(&self) -> TxId {
        self.id
    }
    pub fn envelope(&self) -> &str {
        &self.envelope
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn payload_hash(&self) -> Hash32 {
        self.payload_hash
    }
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
    /// Attaches content fetched later; it must hash to the header's payload hash.
    pub fn attach_payload(&mut self, payload: Vec<u8>) -> Result<(), TxError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(TxError::TooLarge {
                what: "payload",
                max: MAX_PAYLOAD_BYTES,
            });
        }
        if Hash32::of(&payload) != self.payload_hash {
            return Err(TxError::PayloadMismatch);
        }
        self.payload = Some(payload);
        Ok(())
    }
    pub fn signing_input(&self) -> &[u8] {
        &self.envelope.as_bytes()[..self.dot2]
    }
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Checks the signature against `key` (strict: non-canonical signatures are rejected, so one
    /// content cannot yield two transaction ids).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), TxError> {
        key.verify_strict(self.signing_input(), &self.signature)
            .map_err(|_| TxError::BadSignature)
    }
}

/// Verifies many `(transaction, key)` pairs, one result per pair, each with strict (cofactorless)
/// verification.
///
/// Batch verification (ed25519-dalek `verify_batch`) is deliberately not used: it is cofactored
/// and accepts, with some probability, signatures whose `R` has a small-order component that
/// strict verification always refuses. Validity would then depend on how a node happened to group
/// its input, and nodes would disagree about the set (see `specs/transaction.md` and the
/// `torsion_in_r` vector). Large groups are spread over the machine's cores instead.
pub fn verify_batch(items: &[(&Transaction, VerifyingKey)]) -> Vec<Result<(), TxError>> {
    const PARALLEL_FROM: usize = 256;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < PARALLEL_FROM || threads < 2 {
        return items.iter().map(|(t, k)| t.verify_signature(k)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(t, k)| t.verify_signature(k))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(TxError::BadSignature); chunk])
            })
            .collect()
    })
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let out = B64.decode(s).ok()?;
    // Refuse non-canonical encodings (trailing bits set): one transaction, one byte string.
    (B64.encode(&out) == s).then_some(out)
}

/// Builds and signs transactions.
#[derive(Clone, Debug)]
pub struct TxBuilder {
    pub content_type: String,
    pub prevs: Vec<(TxId, u64)>,
    pub sigt: u64,
    pub kid: Option<String>,
}

impl TxBuilder {
    /// A transaction of `content_type` signed now, with no parents.
    pub fn new(content_type: impl Into<String>) -> Self {
        TxBuilder {
            content_type: content_type.into(),
            prevs: Vec::new(),
            sigt: now_ms(),
            kid: None,
        }
    }
    /// Adds causal parents as `(id, lc)` pairs.
    pub fn prevs(mut self, prevs: impl IntoIterator<Item = (TxId, u64)>) -> Self {
        self.prevs.extend(prevs);
        self
    }
    pub fn sigt(mut self, sigt: u64) -> Self {
        self.sigt = sigt;
        self
    }
    /// Refer to the key by `kid` (a DID URL) instead of embedding it.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    pub fn sign(self, key: &SigningKey, payload: Vec<u8>) -> Result<Transaction, TxError> {
        let mut prevs = self.prevs;
        prevs.sort_unstable();
        prevs.dedup_by_key(|p| p.0);
        let lc = prevs.iter().map(|p| p.1 + 1).max().unwrap_or(0);
        let header = Header {
            alg: TX_ALG.into(),
            typ: TX_TYP.into(),
            cty: self.content_type,
            jwk: self
                .kid
                .is_none()
                .then(|| Jwk::from_key(&key.verifying_key())),
            kid: self.kid,
            sigt: self.sigt,
            lc,
            prevs: prevs.into_iter().map(|p| p.0).collect(),
        };
        header.check()?;
        let header_json = serde_json::to_vec(&header).map_err(|_| TxError::Malformed("header"))?;
        let hash = Hash32::of(&payload).to_hex();
        let signing_input = format!("{}.{}", B64.encode(header_json), B64.encode(hash));
        let sig = key.sign(signing_input.as_bytes());
        let envelope = format!("{signing_input}.{}", B64.encode(sig.to_bytes()));
        Transaction::parse(&envelope, Some(payload))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_parse_round_trip() {
        let k = key(1);
        let tx = TxBuilder::new("text/plain")
            .sigt(1_700_000_000_000)
            .sign(&k, b"hi".to_vec())
            .unwrap();
        let again = Transaction::parse(tx.envelope(), Some(b"hi".to_vec())).unwrap();
        assert_eq!(again.id(), tx.id());
        assert_eq!(again.header().lc, 0);
        again.verify_signature(&k.verifying_key()).unwrap();
        assert!(again.verify_signature(&key(2).verifying_key()).is_err());
    }

    #[test]
    fn payload_mismatch_and_withheld_payload() {
        let tx = TxBuilder::new("text/plain")
            .sign(&key(1), b"hi".to_vec())
            .unwrap();
        assert_eq!(
            Transaction::parse(tx.envelope(), Some(b"ho".to_vec())).unwrap_err(),
            TxError::PayloadMismatch
        );
        let mut bare = Transaction::parse(tx.envelope(), None).unwrap();
        assert_eq!(bare.id(), tx.id());
        assert!(bare.attach_payload(b"ho".to_vec()).is_err());
        bare.attach_payload(b"hi".to_vec()).unwrap();
    }

    #[test]
    fn lamport_clock_follows_parents() {
        let k = key(1);
        let a = TxBuilder::new("t/a").sign(&k, vec![1]).unwrap();
        let b = TxBuilder::new("t/a")
            .prevs([(a.id(), a.header().lc)])
            .sign(&k, vec![2])
            .unwrap();
        let c = TxBuilder::new("t/a")
            .prevs([(a.id(), 0), (b.id(), b.header().lc)])
            .sign(&k, vec![3])
            .unwrap();
        assert_eq!(b.header().lc, 1);
        assert_eq!(c.header().lc, 2);
        assert!(c.header().prevs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn batch_verification_reports_the_bad_one() {
        let k = key(3);
        let good: Vec<Transaction> = (0..6u8)
            .map(|i| TxBuilder::new("t/a").sign(&k, vec![i]).unwrap())
            .collect();
        let mut items: Vec<(&Transaction, VerifyingKey)> =
            good.iter().map(|t| (t, k.verifying_key())).collect();
        items[4].1 = key(4).verifying_key();
        let res = verify_batch(&items);
        assert!(res[..4].iter().all(|r| r.is_ok()));
        assert_eq!(res[4], Err(TxError::BadSignature));
        assert!(res[5].is_ok());
    }

    #[test]
    fn rejects_non_canonical_base64() {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let tx = TxBuilder::new("t/a").sign(&key(1), vec![1]).unwrap();
        let mut env = tx.envelope().to_string();
        // 64 signature bytes end in a character carrying 2 data bits and 4 zero bits: setting the
        // lowest bit gives another string that decodes to the same bytes.
        let last = env.pop().unwrap();
        let v = ALPHABET.iter().position(|&c| c as char == last).unwrap();
        assert_eq!(v & 0x0f, 0);
        env.push(ALPHABET[v | 1] as char);
        assert!(matches!(
            Transaction::parse(&env, None),
            Err(TxError::Malformed(_))
        ));
    }
}
