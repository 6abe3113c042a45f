//! Messages on the wire (spec: `specs/sync.md`). CBOR (RFC 8949) via serde; byte strings are
//! CBOR byte strings.

use serde::{Deserialize, Serialize};

use crate::tx::{Transaction, TxId, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES};

/// Protocol name of the request/response sync protocol.
pub const SYNC_PROTOCOL: &str = "/knoop/sync/1";
/// Gossipsub topic on which new transactions are pushed.
pub const TX_TOPIC: &str = "knoop/tx/1";
/// Most ids in one fetch request.
pub const MAX_FETCH_IDS: usize = 512;
/// Largest sync request accepted, in bytes.
pub const MAX_REQUEST_BYTES: u64 = 1024 * 1024;
/// Largest sync response accepted, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// A responder stops adding transactions to a fetch response beyond this many bytes.
pub const FETCH_RESPONSE_SOFT_LIMIT: usize = 8 * 1024 * 1024;
/// Largest pushed (gossipsub) message.
pub const MAX_PUSH_BYTES: usize = MAX_ENVELOPE_BYTES + MAX_PAYLOAD_BYTES + 1024;

/// Protocol name of the private blob exchange (spec: `specs/private-transactions.md` §6).
pub const PRIVATE_PROTOCOL: &str = "/knoop/private/1";
/// Protocol name of the locate query (spec: `specs/consent-localisation.md` §7).
pub const LOCATE_PROTOCOL: &str = "/knoop/locate/1";
/// Protocol name of a patient service's questions to holders (spec: `specs/patient-view.md` §3).
pub const PATIENT_PROTOCOL: &str = "/knoop/patient/1";
/// Protocol name of the admission exchange of members-only networks (spec:
/// `specs/admission.md` §4).
pub const ADMIT_PROTOCOL: &str = "/knoop/admit/1";
/// Largest admission request or response, in bytes (a membership credential and framing).
pub const MAX_ADMIT_BYTES: u64 = 16 * 1024;

/// A peer's membership credential (a vc+jwt, or JSON text), sent when it connects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitRequest {
    #[serde(rename = "c")]
    pub credential: String,
}

/// The answer to an [`AdmitRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdmitResponse {
    /// Admitted; the responder's own membership credential (empty from a node of an open
    /// network, which serves every peer).
    #[serde(rename = "c")]
    Admitted(String),
    /// Refused, and why (`not_a_member`, `busy`, ...).
    #[serde(rename = "x")]
    Refused(String),
}

/// The answer "not here / not for you" of both node-answered protocols: `{"m": null}`.
pub const MISS: [u8; 4] = [0xa1, 0x61, 0x6d, 0xf6];

/// A request for the blob of private transaction `tx`, proving the right to it with the fetch
/// token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRequest {
    #[serde(rename = "i", with = "serde_bytes")]
    pub tx: Vec<u8>,
    #[serde(rename = "t", with = "serde_bytes")]
    pub token: Vec<u8>,
}

/// The answer to a [`BlobRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    #[serde(rename = "c")]
    Blob(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not here, or not for the requester: the same bytes either way (`a1 61 6d f6`,
    /// `{"m": null}`). Always `None`: a unit would encode as an empty array.
    #[serde(rename = "m")]
    Miss(Option<()>),
    #[serde(rename = "x")]
    Refused(String),
}

/// A transaction as carried on the wire: the envelope and, unless withheld, the content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTx {
    #[serde(rename = "e")]
    pub envelope: String,
    #[serde(
        rename = "p",
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_bytes"
    )]
    pub payload: Option<Vec<u8>>,
}

impl WireTx {
    pub fn from_tx(tx: &Transaction) -> Self {
        WireTx {
            envelope: tx.envelope().to_owned(),
            payload: tx.payload().map(|p| p.to_vec()),
        }
    }
    pub fn parse(self) -> Result<Transaction, crate::TxError> {
        Transaction::parse(&self.envelope, self.payload)
    }
    pub fn encode(&self) -> Vec<u8> {
        cbor4ii::serde::to_vec(Vec::new(), self).unwrap_or_default()
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::TxError> {
        cbor4ii::serde::from_slice(bytes)
            .map_err(|_| crate::TxError::Malformed("not a CBOR WireTx"))
    }
}

/// A request of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// A Negentropy V1 message from the initiator.
    #[serde(rename = "r")]
    Reconcile(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Transactions wanted, by id (at most [`MAX_FETCH_IDS`]).
    #[serde(rename = "f")]
    Fetch(Vec<TxId>),
    /// The responder's state: its set digest and its clock (protocol version 1.1).
    #[serde(rename = "s")]
    State(StateQuery),
}

/// The initiator's side of a state exchange: its clock when it sent the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateQuery {
    /// Milliseconds since the Unix epoch, by the initiator's clock.
    #[serde(rename = "t")]
    pub time_ms: u64,
}

/// The responder's state: what an operator compares between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// Milliseconds since the Unix epoch, by the responder's clock, when it answered.
    #[serde(rename = "t")]
    pub time_ms: u64,
    /// The responder's set digest (`specs/transaction.md` §9), at most 5 s old.
    #[serde(rename = "d")]
    pub digest: String,
}

/// Largest accepted [`PeerState::digest`]: a 20-digit count, `-` and 64 hex digits.
pub const MAX_DIGEST_CHARS: usize = 85;

impl PeerState {
    /// A digest of the form `<count>-<64 hex digits>`.
    pub fn is_well_formed(&self) -> bool {
        let Some((count, hash)) = self.digest.split_once('-') else {
            return false;
        };
        self.digest.len() <= MAX_DIGEST_CHARS
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
            && hash.len() == 64
            && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The responder's clock minus the initiator's, estimated as NTP does (RFC 5905 §8, with
    /// one responder timestamp): `t - (sent + received) / 2`, from the initiator's send and
    /// receive times.
    pub fn clock_offset_ms(&self, sent_ms: u64, received_ms: u64) -> i64 {
        let mid = (sent_ms as i128 + received_ms as i128) / 2;
        (self.time_ms as i128 - mid).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// A response of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The responder's Negentropy V1 message.
    #[serde(rename = "r")]
    Reconcile(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The transactions of a fetch that the responder holds, parents before children.
    #[serde(rename = "t")]
    Txs(Vec<WireTx>),
    /// The request was refused (`rate_limited`, `bad_request`, `busy`).
    #[serde(rename = "x")]
    Refused(String),
    /// The answer to a state request.
    #[serde(rename = "s")]
    State(PeerState),
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => serde_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<serde_bytes::ByteBuf>::deserialize(d).map(|o| o.map(|b| b.into_vec()))
    }
}

#[cfg(test)]
mod blob_wire_tests {
    use super::*;

    #[test]
    fn a_miss_is_four_fixed_bytes() {
        let miss = cbor4ii::serde::to_vec(Vec::new(), &BlobResponse::Miss(None)).unwrap();
        assert_eq!(miss, [0xa1, 0x61, 0x6d, 0xf6]);
        let back: BlobResponse = cbor4ii::serde::from_slice(&miss).unwrap();
        assert_eq!(back, BlobResponse::Miss(None));
        let req = BlobRequest {
            tx: vec![1; 32],
            token: vec![2; 32],
        };
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &req).unwrap();
        assert!(bytes.len() <= 256);
        assert_eq!(miss, MISS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Hash32;

    #[test]
    fn round_trips() {
        let w = WireTx {
            envelope: "a.b.c".into(),
            payload: Some(vec![1, 2, 3]),
        };
        assert_eq!(WireTx::decode(&w.encode()).unwrap(), w);
        let w = WireTx {
            envelope: "a.b.c".into(),
            payload: None,
        };
        assert_eq!(WireTx::decode(&w.encode()).unwrap(), w);
        let r = SyncRequest::Fetch(vec![Hash32([1; 32])]);
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &r).unwrap();
        let back: SyncRequest = cbor4ii::serde::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        assert!(WireTx::decode(&[0xff, 0x00]).is_err());
    }

    #[test]
    fn a_state_answer_is_checked_and_gives_the_clock_offset() {
        let state = |digest: &str| PeerState {
            time_ms: 1_000_500,
            digest: digest.to_owned(),
        };
        let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(state(&format!("0-{hash}")).is_well_formed());
        assert!(state(&format!("18446744073709551615-{hash}")).is_well_formed());
        for bad in [
            String::new(),
            hash.to_owned(),
            format!("-{hash}"),
            format!("x-{hash}"),
            format!("1-{}", hash.to_uppercase()),
            format!("1-{}", &hash[1..]),
            format!("{}-{hash}", "9".repeat(30)),
        ] {
            assert!(!state(&bad).is_well_formed(), "{bad}");
        }
        // Sent at 1000, answered at 1000500 by the peer's clock, received at 2000: the peer is
        // 999000 ms ahead; a peer behind gives a negative offset.
        assert_eq!(state("").clock_offset_ms(1_000, 2_000), 999_000);
        assert_eq!(state("").clock_offset_ms(2_000_000, 2_000_200), -999_600);
    }
}
