//! The node's audit log (spec: `specs/audit.md`): every access decision (locate requests,
//! token requests, grants and refusals, data served and data fetched) as an append-only,
//! hash-chained sequence, so a changed, removed or reordered entry is detected. Exported as FHIR
//! R4 `AuditEvent` resources.
//!
//! Entry `n` stores `hash_n = SHA-256(hash_{n-1} || canonical JSON of entry n without its
//! hash)`, with `hash_0` of the first entry chained to 32 zero bytes. The chain head is also
//! kept in `meta`, so truncating the log is detected too.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::store::NodeStore;

const HEAD_KEY: &[u8] = b"audit_head";
/// How far the per-patient index (`ap/` | P | seq) reaches: the next `seq` not indexed.
const INDEXED_KEY: &[u8] = b"audit_patient_indexed";

/// One audited event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `locate`, `token`, `data` (served by the proxy) or `fetch` (asked by this node).
    pub kind: String,
    /// The libp2p peer that asked, if over the network.
    pub peer: String,
    /// The asking node's DID.
    pub operator: Option<String>,
    /// The requesting organisation.
    pub requester: String,
    /// The professional (opaque reference).
    pub who: String,
    pub purpose: String,
    /// The token scope (use case), where one applies.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The patient reference (pseudonym), never an identifier.
    pub patient: String,
    /// `answered`, `no_permitted_data`, `rate_limited`, or the reason of a refusal.
    pub outcome: String,
    pub categories: Vec<String>,
    /// The professional's role code (token requests); absent when empty, so entries written
    /// before it existed hash the same.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Why the glass was broken, for a grant that broke it; absent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// An entry of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time_ms: u64,
    #[serde(flatten)]
    pub event: Event,
    /// Hex SHA-256 of the previous entry's hash and this entry (without `hash`).
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time_ms: u64,
    #[serde(flatten)]
    event: &'a Event,
}

fn chain(prev: &[u8; 32], seq: u64, time_ms: u64, event: &Event) -> [u8; 32] {
    // serde_json writes struct fields in declaration order: the encoding is canonical.
    let body = serde_json::to_vec(&Hashed {
        seq,
        time_ms,
        event,
    })
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&body);
    h.finalize().into()
}

fn key(seq: u64) -> Vec<u8> {
    [b"a/".as_slice(), &seq.to_be_bytes()].concat()
}

/// The per-patient index key of entry `seq` about patient `p` (`specs/storage.md` §3.11).
fn patient_key(p: &[u8; 32], seq: u64) -> Vec<u8> {
    [b"ap/".as_slice(), p, &seq.to_be_bytes()].concat()
}

/// What a check of the log found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub valid: bool,
    pub entries: u64,
    /// The first entry that does not verify (or where the log was cut short).
    pub first_invalid: Option<u64>,
    pub reason: Option<String>,
}

/// The audit log.
pub struct AuditLog {
    store: Arc<dyn NodeStore>,
    metrics: Option<Arc<crate::ops::metrics::Metrics>>,
    /// `(next seq, last hash)`.
    head: Mutex<(u64, [u8; 32])>,
}

impl AuditLog {
    pub fn open(store: Arc<dyn NodeStore>) -> Self {
        let head = store
            .get_meta(HEAD_KEY)
            .ok()
            .flatten()
            .and_then(|v| {
                let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
                let hash: [u8; 32] = v.get(8..40)?.try_into().ok()?;
                Some((seq, hash))
            })
            .unwrap_or((0, [0; 32]));
        let log = AuditLog {
            store,
            metrics: None,
            head: Mutex::new(head),
        };
        log.index_patients(head.0);
        log
    }

    /// Indexes by patient the entries written before the per-patient index existed (or before
    /// a crash between an entry and its index key): once, at open.
    fn index_patients(&self, next: u64) {
        let from = self
            .store
            .get_meta(INDEXED_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if from >= next {
            return;
        }
        for e in self.entries(from, usize::MAX) {
            if let Some(p) = knoop_privacy::patient::parse_reference(&e.event.patient) {
                if let Err(err) = self.store.put_private(&patient_key(&p, e.seq), &[]) {
                    warn!(error = %err, "cannot index the audit log by patient");
                    return;
                }
            }
        }
        let _ = self.store.put_meta(INDEXED_KEY, &next.to_be_bytes());
    }

    /// The entries about patient `p`, newest first, at most `limit`.
    pub fn about_patient(&self, p: &[u8; 32], limit: usize) -> Vec<Entry> {
        let prefix = [b"ap/".as_slice(), p].concat();
        let mut seqs: Vec<u64> = self
            .store
            .scan_private(&prefix)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, _)| Some(u64::from_be_bytes(k.get(prefix.len()..)?.try_into().ok()?)))
            .collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.into_iter()
            .take(limit)
            .filter_map(|seq| {
                let v = self.store.get_private(&key(seq)).ok()??;
                serde_json::from_slice::<Entry>(&v).ok()
            })
            .collect()
    }

    /// Counts every appended decision in `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<crate::ops::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Entries written so far.
    pub fn len(&self) -> u64 {
        self.head.lock().map(|h| h.0).unwrap_or(0)
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends an event (and logs it under the `audit` target).
    pub fn append(&self, event: Event) {
        let Ok(mut head) = self.head.lock() else {
            return;
        };
        let (seq, prev) = *head;
        let time_ms = knoop_gossip::tx::now_ms();
        let hash = chain(&prev, seq, time_ms, &event);
        info!(
            target: "audit", seq, kind = %event.kind, requester = %event.requester,
            operator = ?event.operator, purpose = %event.purpose, patient = %event.patient,
            outcome = %event.outcome, "audited"
        );
        let entry = Entry {
            seq,
            time_ms,
            event,
            hash: hex::encode(hash),
        };
        let res = serde_json::to_vec(&entry)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.store
                    .put_private(&key(seq), &v)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| {
                let head_value = [&(seq + 1).to_be_bytes()[..], &hash].concat();
                self.store
                    .put_meta(HEAD_KEY, &head_value)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| {
                // The per-patient index: what a patient's view reads (`specs/patient-view.md`).
                if let Some(p) = knoop_privacy::patient::parse_reference(&entry.event.patient) {
                    self.store
                        .put_private(&patient_key(&p, seq), &[])
                        .map_err(|e| e.to_string())?;
                }
                self.store
                    .put_meta(INDEXED_KEY, &(seq + 1).to_be_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Some(m) = &self.metrics {
            m.decision(&entry.event.kind, &entry.event.outcome);
        }
        match res {
            Ok(()) => *head = (seq + 1, hash),
            Err(e) => warn!(error = %e, "cannot write an audit entry"),
        }
    }

    /// Entries with `seq >= after`, at most `limit`.
    pub fn entries(&self, after: u64, limit: usize) -> Vec<Entry> {
        self.store
            .scan_private(b"a/")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<Entry>(&v).ok())
            .filter(|e| e.seq >= after)
            .take(limit)
            .collect()
    }

    /// Recomputes the chain from the first entry to the recorded head.
    pub fn verify(&self) -> Verdict {
        let (next, head_hash) = self.head.lock().map(|h| *h).unwrap_or((0, [0; 32]));
        let mut prev = [0u8; 32];
        let mut expected = 0u64;
        let bad = |seq: u64, reason: &str| Verdict {
            valid: false,
            entries: next,
            first_invalid: Some(seq),
            reason: Some(reason.to_owned()),
        };
        for (k, v) in self.store.scan_private(b"a/").unwrap_or_default() {
            let Ok(e) = serde_json::from_slice::<Entry>(&v) else {
                return bad(expected, "an entry does not parse");
            };
            if k != key(e.seq) || e.seq != expected {
                return bad(expected, "an entry is missing or out of place");
            }
            let h = chain(&prev, e.seq, e.time_ms, &e.event);
            if hex::encode(h) != e.hash {
                return bad(e.seq, "the entry does not match its hash");
            }
            prev = h;
            expected += 1;
        }
        if expected != next || prev != head_hash {
            return bad(expected, "the log ends before its recorded head");
        }
        Verdict {
            valid: true,
            entries: next,
            first_invalid: None,
            reason: None,
        }
    }
}

/// `v` without nulls and empty strings, arrays and objects, which FHIR JSON forbids (R4 §2.6.2).
pub fn without_empties(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(without_empties).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(o) => {
            let o: serde_json::Map<String, Value> = o
                .into_iter()
                .filter_map(|(k, v)| without_empties(v).map(|v| (k, v)))
                .collect();
            (!o.is_empty()).then_some(Value::Object(o))
        }
        v => Some(v),
    }
}

/// An entry as a FHIR R4 `AuditEvent` (no empty elements).
pub fn to_fhir(e: &Entry, node_did: &str) -> Value {
    without_empties(event_resource(e, node_did)).unwrap_or_default()
}

fn event_resource(e: &Entry, node_did: &str) -> Value {
    // A detail needs its value: those without one are left out.
    let details: Vec<Value> = [
        ("categories", e.event.categories.join(",")),
        ("scope", e.event.scope.clone()),
        ("break-the-glass reason", e.event.reason.clone()),
        ("hash", e.hash.clone()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(t, v)| json!({"type": t, "valueString": v}))
    .collect();
    let o = &e.event.outcome;
    let success = o == "answered"
        || o == "granted"
        || o == "granted_break_the_glass"
        || (o.starts_with("served ") && !o.contains("failed"));
    let outcome = if success { "0" } else { "4" };
    let mut agents = vec![json!({
        "type": {"text": "requesting organisation"},
        "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": e.event.requester}},
        "requestor": true,
    })];
    if !e.event.who.is_empty() {
        agents.push(json!({
            "type": {"text": "professional"},
            "role": [{"coding": [{"code": e.event.role}]}],
            "who": {"display": e.event.who},
            "requestor": true,
        }));
    }
    json!({
        "resourceType": "AuditEvent",
        "id": format!("knoop-audit-{}", e.seq),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110112", "display": "Query"},
        "subtype": [{"system": "https://w3id.org/knoop/audit", "code": e.event.kind}],
        "action": "E",
        "recorded": knoop_did::knoop::time::to_rfc3339_ms(e.time_ms),
        "outcome": outcome,
        "outcomeDesc": e.event.outcome,
        "purposeOfEvent": [{"text": e.event.purpose}],
        "agent": agents,
        "source": {"observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": node_did}}},
        "entity": [{
            "what": {"identifier": {"system": "urn:knoop:patient", "value": e.event.patient}},
            "detail": details,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Arc<dyn NodeStore>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("knoop-audit-{}", rand::random::<u64>()));
        (Arc::new(crate::store::RocksStore::open(&dir).unwrap()), dir)
    }

    fn event(i: u32) -> Event {
        Event {
            kind: "locate".into(),
            requester: format!("did:knoop:r{i}"),
            outcome: "answered".into(),
            patient: "urn:knoop:patient:x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_changed_removed_or_cut_entry_is_detected() {
        let (s, dir) = store();
        let log = AuditLog::open(s.clone());
        for i in 0..5 {
            log.append(event(i));
        }
        assert!(log.verify().valid);
        assert_eq!(log.entries(0, 100).len(), 5);
        // Reopened, it continues the same chain.
        let log = AuditLog::open(s.clone());
        log.append(event(5));
        assert!(log.verify().valid);

        // Someone edits entry 2's outcome in the store.
        let mut e: Entry =
            serde_json::from_slice(&s.get_private(&key(2)).unwrap().unwrap()).unwrap();
        let original = e.clone();
        e.event.outcome = "no_permitted_data".into();
        s.put_private(&key(2), &serde_json::to_vec(&e).unwrap())
            .unwrap();
        let v = log.verify();
        assert_eq!((v.valid, v.first_invalid), (false, Some(2)), "{v:?}");
        // Even with the hash recomputed, the next entry no longer chains.
        e.hash = hex::encode(chain(
            &<[u8; 32]>::try_from(hex::decode(log.entries(1, 1)[0].hash.clone()).unwrap()).unwrap(),
            2,
            e.time_ms,
            &e.event,
        ));
        s.put_private(&key(2), &serde_json::to_vec(&e).unwrap())
            .unwrap();
        assert_eq!(log.verify().first_invalid, Some(3));
        s.put_private(&key(2), &serde_json::to_vec(&original).unwrap())
            .unwrap();
        assert!(log.verify().valid);
        // The last entry removed: the log ends before its head.
        let last = s.get_private(&key(5)).unwrap().unwrap();
        s.put_private(&key(5), b"{}").unwrap();
        assert!(!log.verify().valid);
        s.put_private(&key(5), &last).unwrap();
        assert!(log.verify().valid);
        let fhir = to_fhir(&log.entries(0, 1)[0], "did:knoop:node");
        assert_eq!(fhir["resourceType"], "AuditEvent");
        assert_eq!(fhir["outcome"], "0");
        drop(log);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}
