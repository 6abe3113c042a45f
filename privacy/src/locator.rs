//! The localisation index (spec: `specs/consent-localisation.md` §6): fixed-size encrypted
//! entries in per-patient numbered slots. Only someone who knows the patient's identifier (and
//! so its keys, [`crate::patient`]) can compute a slot's tag or open an entry; an entry names
//! nothing but its kind, and the node that signed it is bound in as associated data.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Sha256;

use crate::patient::PatientKeys;

/// Content type of a localisation transaction.
pub const LOC_CONTENT_TYPE: &str = "application/knoop-loc+cbor";
/// Size of one entry.
pub const ENTRY_LEN: usize = 104;
/// Slots per patient.
pub const SLOTS: u32 = 256;
/// A scan stops after this many consecutive empty slots.
pub const EMPTY_SLOTS_TO_STOP: u32 = 4;
/// Most entries in one transaction.
pub const MAX_ENTRIES: usize = 1024;
const PLAIN_LEN: usize = 48;

/// What an entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The signing node holds data about the patient.
    Held,
    /// Cancels the signer's own `Held` entry at `(tx, index)`.
    Withdrawn { tx: [u8; 32], index: u32 },
    /// A private transaction about the patient (consent) with a patient-key slot.
    Consent { tx: [u8; 32] },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    k: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<ByteBuf>,
}

/// Why an entry or a localisation transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocError {
    #[error("malformed localisation content: {0}")]
    Malformed(String),
    #[error("the entry does not open (another patient, another signer, or tampered)")]
    DoesNotOpen,
    #[error("the entry's padding is not zero")]
    BadPadding,
}

/// The tag of slot `i` of a patient: `HMAC(K_tag, "knoop/loc/1 slot" || u32be(i))[0..16]`.
pub fn slot_tag(keys: &PatientKeys, i: u32) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.k_tag.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"knoop/loc/1 slot");
    mac.update(&i.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut t = [0u8; 16];
    t.copy_from_slice(&full[..16]);
    t
}

fn aad(tag: &[u8; 16], signer: &str) -> Vec<u8> {
    [b"knoop/loc/1 entry".as_slice(), tag, signer.as_bytes()].concat()
}

fn plain(kind: &EntryKind) -> Vec<u8> {
    let p = match kind {
        EntryKind::Held => Plain {
            k: 1,
            w: None,
            i: None,
            t: None,
        },
        EntryKind::Withdrawn { tx, index } => Plain {
            k: 2,
            w: Some(ByteBuf::from(tx.to_vec())),
            i: Some(*index),
            t: None,
        },
        EntryKind::Consent { tx } => Plain {
            k: 3,
            w: None,
            i: None,
            t: Some(ByteBuf::from(tx.to_vec())),
        },
    };
    let mut v = cbor4ii::serde::to_vec(Vec::new(), &p).unwrap_or_default();
    v.resize(PLAIN_LEN, 0);
    v
}

/// Seals an entry for slot `i` of a patient, signed (in its transaction) by node DID `signer`.
pub fn seal_entry(
    keys: &PatientKeys,
    i: u32,
    signer: &str,
    kind: &EntryKind,
    nonce: &[u8; 24],
) -> [u8; ENTRY_LEN] {
    let tag = slot_tag(keys, i);
    let ct = XChaCha20Poly1305::new(keys.k_ent.as_ref().into())
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: &plain(kind),
                aad: &aad(&tag, signer),
            },
        )
        .unwrap_or_default();
    let mut out = [0u8; ENTRY_LEN];
    out[..16].copy_from_slice(&tag);
    out[16..40].copy_from_slice(nonce);
    out[40..].copy_from_slice(&ct);
    out
}

/// Opens an entry of this patient signed by `signer`.
pub fn open_entry(keys: &PatientKeys, entry: &[u8], signer: &str) -> Result<EntryKind, LocError> {
    if entry.len() != ENTRY_LEN {
        return Err(LocError::Malformed("an entry is 104 bytes".into()));
    }
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&entry[..16]);
    let plain = XChaCha20Poly1305::new(keys.k_ent.as_ref().into())
        .decrypt(
            XNonce::from_slice(&entry[16..40]),
            Payload {
                msg: &entry[40..],
                aad: &aad(&tag, signer),
            },
        )
        .map_err(|_| LocError::DoesNotOpen)?;
    // One CBOR map, then zeros: the map is the shortest prefix that decodes and re-encodes to
    // itself (entries are at most 48 bytes, so trying each length is cheap).
    let (p, used) = (1..=PLAIN_LEN)
        .find_map(|n| {
            let p: Plain = cbor4ii::serde::from_slice(&plain[..n]).ok()?;
            (cbor4ii::serde::to_vec(Vec::new(), &p).ok()? == plain[..n]).then_some((p, n))
        })
        .ok_or_else(|| LocError::Malformed("not a CBOR entry".into()))?;
    if plain[used..].iter().any(|&b| b != 0) {
        return Err(LocError::BadPadding);
    }
    let id = |b: &Option<ByteBuf>| -> Result<[u8; 32], LocError> {
        b.as_ref()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| LocError::Malformed("a transaction id is 32 bytes".into()))
    };
    match p.k {
        1 => Ok(EntryKind::Held),
        2 => Ok(EntryKind::Withdrawn {
            tx: id(&p.w)?,
            index: p
                .i
                .ok_or_else(|| LocError::Malformed("withdrawn needs i".into()))?,
        }),
        3 => Ok(EntryKind::Consent { tx: id(&p.t)? }),
        k => Err(LocError::Malformed(format!("unknown kind {k}"))),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocContent {
    v: u8,
    e: ByteBuf,
}

/// The content of a localisation transaction: `{"v": 1, "e": entries concatenated}`.
pub fn encode_content(entries: &[[u8; ENTRY_LEN]]) -> Vec<u8> {
    let e: Vec<u8> = entries.iter().flatten().copied().collect();
    cbor4ii::serde::to_vec(
        Vec::new(),
        &LocContent {
            v: 1,
            e: ByteBuf::from(e),
        },
    )
    .unwrap_or_default()
}

/// The entries of a localisation transaction's content (strict: canonical, 1..1024 entries).
pub fn decode_content(bytes: &[u8]) -> Result<Vec<[u8; ENTRY_LEN]>, LocError> {
    let c: LocContent =
        cbor4ii::serde::from_slice(bytes).map_err(|e| LocError::Malformed(e.to_string()))?;
    if c.v != 1 {
        return Err(LocError::Malformed("unknown version".into()));
    }
    let n = c.e.len() / ENTRY_LEN;
    if !c.e.len().is_multiple_of(ENTRY_LEN) || n == 0 || n > MAX_ENTRIES {
        return Err(LocError::Malformed(
            "1..1024 entries of 104 bytes each".into(),
        ));
    }
    let entries: Vec<[u8; ENTRY_LEN]> =
        c.e.chunks_exact(ENTRY_LEN)
            .filter_map(|c| c.try_into().ok())
            .collect();
    if encode_content(&entries) != bytes {
        return Err(LocError::Malformed("not the canonical encoding".into()));
    }
    Ok(entries)
}

/// What a scan of a patient's slots found (§6.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Node DIDs with a live `Held` entry, with where it is (`(tx, index)`).
    pub holders: Vec<(String, [u8; 32], u32)>,
    /// Transactions named by `Consent` entries.
    pub consents: Vec<[u8; 32]>,
    /// The first slot with no entry (where a new entry goes), if any is left.
    pub free_slot: Option<u32>,
}

/// One stored entry at a slot: its transaction, position, signer and bytes.
pub struct StoredEntry {
    pub tx: [u8; 32],
    pub index: u32,
    pub signer: String,
    pub entry: [u8; ENTRY_LEN],
}

/// Scans a patient's slots through `lookup(tag)` (the entries stored under a tag). Stops after
/// [`EMPTY_SLOTS_TO_STOP`] empty slots in a row, or at [`SLOTS`].
pub fn scan(keys: &PatientKeys, lookup: &dyn Fn(&[u8; 16]) -> Vec<StoredEntry>) -> ScanResult {
    let mut out = ScanResult::default();
    let mut held: Vec<(String, [u8; 32], u32)> = Vec::new();
    let mut withdrawn: Vec<(String, [u8; 32], u32)> = Vec::new();
    let mut empty = 0;
    for i in 0..SLOTS {
        let found = lookup(&slot_tag(keys, i));
        if found.is_empty() {
            out.free_slot.get_or_insert(i);
            empty += 1;
            if empty >= EMPTY_SLOTS_TO_STOP {
                break;
            }
            continue;
        }
        empty = 0;
        for e in found {
            match open_entry(keys, &e.entry, &e.signer) {
                Ok(EntryKind::Held) => held.push((e.signer, e.tx, e.index)),
                Ok(EntryKind::Withdrawn { tx, index }) => withdrawn.push((e.signer, tx, index)),
                Ok(EntryKind::Consent { tx }) => out.consents.push(tx),
                Err(_) => {}
            }
        }
    }
    // A withdrawal counts only for the signer's own entry.
    held.retain(|h| !withdrawn.contains(h));
    held.sort();
    held.dedup_by(|a, b| a.0 == b.0);
    out.holders = held;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::{NetworkParams, PatientId};
    use zeroize::Zeroizing;

    fn keys(bsn: &str) -> PatientKeys {
        let net = NetworkParams {
            network_id: "knoop-test".into(),
            epoch: 1,
            pepper: Zeroizing::new([0x51; 32]),
            m_kib: 256,
            t: 1,
            p: 1,
        };
        PatientKeys::derive(&PatientId::bsn(bsn).unwrap(), &net).unwrap()
    }

    #[test]
    fn entries_open_only_for_their_patient_and_signer() {
        let k = keys("123456782");
        let other = keys("111222333");
        for kind in [
            EntryKind::Held,
            EntryKind::Withdrawn {
                tx: [9; 32],
                index: 0,
            },
            EntryKind::Consent { tx: [8; 32] },
            EntryKind::Consent { tx: [0; 32] },
            EntryKind::Withdrawn {
                tx: [0; 32],
                index: 255,
            },
        ] {
            let e = seal_entry(&k, 3, "did:knoop:node-a", &kind, &[0x61; 24]);
            assert_eq!(e.len(), ENTRY_LEN);
            assert_eq!(&e[..16], &slot_tag(&k, 3));
            assert_eq!(open_entry(&k, &e, "did:knoop:node-a"), Ok(kind.clone()));
            assert_eq!(
                open_entry(&k, &e, "did:knoop:node-b"),
                Err(LocError::DoesNotOpen)
            );
            assert_eq!(
                open_entry(&other, &e, "did:knoop:node-a"),
                Err(LocError::DoesNotOpen)
            );
        }
        assert_ne!(slot_tag(&k, 0), slot_tag(&other, 0));
        assert_ne!(slot_tag(&k, 0), slot_tag(&k, 1));
    }

    #[test]
    fn content_round_trips_strictly() {
        let k = keys("123456782");
        let es: Vec<_> = (0..3)
            .map(|i| seal_entry(&k, i, "did:knoop:n", &EntryKind::Held, &[i as u8; 24]))
            .collect();
        let c = encode_content(&es);
        assert_eq!(decode_content(&c).unwrap(), es);
        assert!(decode_content(&encode_content(&[])).is_err());
        let mut bad = c.clone();
        bad.push(0);
        assert!(decode_content(&bad).is_err());
    }

    #[test]
    fn a_scan_finds_live_holders_and_stops_after_empty_slots() {
        let k = keys("123456782");
        let mut store: Vec<StoredEntry> = Vec::new();
        let mut put = |i: u32, signer: &str, kind: EntryKind, tx: u8| {
            store.push(StoredEntry {
                tx: [tx; 32],
                index: 0,
                signer: signer.into(),
                entry: seal_entry(&k, i, signer, &kind, &[tx; 24]),
            })
        };
        put(0, "did:knoop:a", EntryKind::Held, 1);
        put(1, "did:knoop:b", EntryKind::Held, 2);
        put(2, "did:knoop:c", EntryKind::Held, 3);
        // c withdraws its own entry; a's withdrawal of b's entry does not count.
        put(
            3,
            "did:knoop:c",
            EntryKind::Withdrawn {
                tx: [3; 32],
                index: 0,
            },
            4,
        );
        put(
            4,
            "did:knoop:a",
            EntryKind::Withdrawn {
                tx: [2; 32],
                index: 0,
            },
            5,
        );
        put(5, "did:knoop:a", EntryKind::Consent { tx: [7; 32] }, 6);
        // After a gap of three empty slots, slot 9 is still read; after four, slot 14 is not.
        put(9, "did:knoop:d", EntryKind::Held, 8);
        put(14, "did:knoop:e", EntryKind::Held, 9);
        let lookup = |t: &[u8; 16]| -> Vec<StoredEntry> {
            store
                .iter()
                .filter(|e| &e.entry[..16] == t)
                .map(|e| StoredEntry {
                    tx: e.tx,
                    index: e.index,
                    signer: e.signer.clone(),
                    entry: e.entry,
                })
                .collect()
        };
        let r = scan(&k, &lookup);
        let holders: Vec<&str> = r.holders.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(holders, vec!["did:knoop:a", "did:knoop:b", "did:knoop:d"]);
        assert_eq!(r.consents, vec![[7; 32]]);
        assert_eq!(r.free_slot, Some(6));
        // Another patient finds nothing.
        assert_eq!(scan(&keys("111222333"), &lookup).holders.len(), 0);
    }
}
