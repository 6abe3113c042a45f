//! The bridge (spec: `specs/mcsd.md` §6.4): a node whose update client reads external
//! Administration Directories publishes what it learned to the network, signed by its node DID,
//! once per change, as transactions of [`CONTENT_TYPE`]; the nodes that trust that DID as a
//! bridge (`[mcsd] trusted_bridges`) serve it as unverified entries without polling anything.
//! What a bridge has published is read back from the log, so a change that failed to publish
//! is sent again after the next round.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::external::{ExternalResource, Resources};
use crate::directory::fhir_search;
use crate::directory::ids::is_fhir_id;
use crate::directory::r4::r4_required;
use crate::store::NodeStore;

/// The content type of a bridge's change on the network.
pub const CONTENT_TYPE: &str = "application/knoop-mcsd-bridge+json";
/// The most entries one change carries.
pub const MAX_ENTRIES: usize = 100;

/// One resource a bridge learned, or its removal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeEntry {
    #[serde(rename = "type")]
    pub type_: String,
    /// The node-given id (`specs/mcsd.md` §6.3).
    pub id: String,
    /// The URA of the top-level organisation it belongs to.
    pub ura: String,
    /// The external directory it came from (its key).
    pub source: String,
    /// The resource, or absent: no longer served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
}

/// The content of a bridge's transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeChange {
    pub entries: Vec<BridgeEntry>,
}

/// Reads a bridge change: 1 to 100 entries, each a directory type with a FHIR id and a URA,
/// its resource of that type and id with what FHIR R4 requires.
pub fn parse(payload: &[u8]) -> Result<Vec<BridgeEntry>, String> {
    let c: BridgeChange =
        serde_json::from_slice(payload).map_err(|e| format!("not a bridge change: {e}"))?;
    if c.entries.is_empty() || c.entries.len() > MAX_ENTRIES {
        return Err(format!("1 to {MAX_ENTRIES} entries"));
    }
    for e in &c.entries {
        let what = format!("{}/{}", e.type_, e.id);
        if fhir_search::params_of(&e.type_).is_none() || !is_fhir_id(&e.id) {
            return Err(format!("{what}: not a directory resource"));
        }
        if e.ura.is_empty() {
            return Err(format!("{what}: no URA"));
        }
        if let Some(r) = &e.resource {
            if r["resourceType"] != e.type_.as_str() || r["id"] != e.id.as_str() {
                return Err(format!("{what}: the resource is not {what}"));
            }
            r4_required(&e.type_, r).map_err(|err| format!("{what}: {err}"))?;
        }
    }
    Ok(c.entries)
}

/// The entries that take a bridge from what it published (`before`) to what it learned
/// (`after`), in changes of at most [`MAX_ENTRIES`] (each the bytes of one transaction).
pub fn changes(before: &Resources, after: &Resources) -> Vec<Vec<u8>> {
    let mut entries: Vec<BridgeEntry> = Vec::new();
    for ((t, id), x) in after {
        if before.get(&(t.clone(), id.clone())).map(|b| &b.resource) != Some(&x.resource) {
            entries.push(BridgeEntry {
                type_: t.clone(),
                id: id.clone(),
                ura: x.ura.clone(),
                source: x.source.clone(),
                resource: Some(x.resource.clone()),
            });
        }
    }
    for ((t, id), x) in before {
        if !after.contains_key(&(t.clone(), id.clone())) {
            entries.push(BridgeEntry {
                type_: t.clone(),
                id: id.clone(),
                ura: x.ura.clone(),
                source: x.source.clone(),
                resource: None,
            });
        }
    }
    entries
        .chunks(MAX_ENTRIES)
        .filter_map(|c| {
            serde_json::to_vec(&BridgeChange {
                entries: c.to_vec(),
            })
            .ok()
        })
        .collect()
}

/// A trusted bridge's latest claim on one resource.
struct Claim {
    /// `(Lamport clock, signing time, transaction id)`: the later claim wins.
    order: (u64, u64, String),
    bridge: String,
    entry: BridgeEntry,
}

#[derive(Default)]
struct Index {
    seen: u64,
    claims: HashMap<(String, String), Claim>,
}

/// The index of the changes trusted bridges published.
pub struct Bridged {
    store: Arc<dyn NodeStore>,
    trusted: Vec<String>,
    index: RwLock<Index>,
}

impl Bridged {
    /// `trusted`: the DIDs whose bridge changes count (a bridge lists itself).
    pub fn new(store: Arc<dyn NodeStore>, trusted: Vec<String>) -> Self {
        Bridged {
            store,
            trusted,
            index: RwLock::new(Index::default()),
        }
    }

    /// Reads the bridge changes committed since the last call.
    pub fn catch_up(&self) {
        let after = match self.index.read() {
            Ok(i) => i.seen,
            Err(_) => return,
        };
        let (last, txs) = crate::store::read_by_type(self.store.as_ref(), CONTENT_TYPE, after);
        if last == after {
            return;
        }
        let Ok(mut idx) = self.index.write() else {
            return;
        };
        for (_, tx, payload) in &txs {
            let Some(bridge) = crate::identity::did_state::signer_did(tx) else {
                continue;
            };
            if !self.trusted.contains(&bridge) {
                tracing::debug!(tx = %tx.id(), %bridge, "bridge change of an untrusted DID ignored");
                continue;
            }
            let entries = match parse(payload) {
                Ok(e) => e,
                Err(e) => {
                    tracing::info!(tx = %tx.id(), error = %e, "bridge change ignored");
                    continue;
                }
            };
            let h = tx.header();
            let order = (h.lc, h.sigt, tx.id().to_hex());
            for e in entries {
                let key = (e.type_.clone(), e.id.clone());
                if idx.claims.get(&key).is_none_or(|c| c.order < order) {
                    let claim = Claim {
                        order: order.clone(),
                        bridge: bridge.clone(),
                        entry: e,
                    };
                    idx.claims.insert(key, claim);
                }
            }
        }
        idx.seen = idx.seen.max(last);
    }

    /// What the trusted bridges serve now (of `bridge` only, if given).
    pub fn resources(&self, bridge: Option<&str>) -> Resources {
        let Ok(idx) = self.index.read() else {
            return Resources::new();
        };
        idx.claims
            .iter()
            .filter(|(_, c)| bridge.is_none_or(|b| b == c.bridge))
            .filter_map(|(k, c)| {
                Some((
                    k.clone(),
                    ExternalResource {
                        resource: c.entry.resource.clone()?,
                        source: c.entry.source.clone(),
                        ura: c.entry.ura.clone(),
                        rank: 0,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn x(name: &str) -> ExternalResource {
        ExternalResource {
            resource: json!({"resourceType": "Organization", "id": "xa", "name": name}),
            source: "https://d".into(),
            ura: "111".into(),
            rank: 1,
        }
    }

    #[test]
    fn changes_carry_what_differs_and_read_back() {
        let key = ("Organization".to_owned(), "xa".to_owned());
        let gone = ("Organization".to_owned(), "xb".to_owned());
        let before = Resources::from([(key.clone(), x("A")), (gone.clone(), x("B"))]);
        let after = Resources::from([(key.clone(), x("A2"))]);
        let bytes = changes(&before, &after);
        assert_eq!(bytes.len(), 1);
        let entries = parse(&bytes[0]).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].resource.as_ref().unwrap()["name"], "A2");
        assert_eq!(
            (entries[1].id.as_str(), &entries[1].resource),
            ("xb", &None)
        );
        assert!(changes(&after, &after).is_empty());
    }

    /// `specs/vectors/mcsd.json`, `bridge`: what a bridge change on the network reads as.
    #[test]
    fn the_bridge_vectors_read_as_specified() {
        let v: Value = serde_json::from_str(include_str!("../../../specs/vectors/mcsd.json"))
            .expect("mcsd.json");
        let b = &v["bridge"];
        assert_eq!(b["content_type"], CONTENT_TYPE);
        for case in b["valid"].as_array().unwrap() {
            let bytes = serde_json::to_vec(&case["content"]).unwrap();
            let entries = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
            assert_eq!(Some(entries.len() as u64), case["entries"].as_u64());
        }
        for case in b["invalid"].as_array().unwrap() {
            let bytes = serde_json::to_vec(&case["content"]).unwrap();
            let err = parse(&bytes).expect_err(case["name"].as_str().unwrap());
            let want = case["error"].as_str().unwrap();
            assert!(
                err.contains(want),
                "{}: {err} (wanted {want})",
                case["name"]
            );
        }
    }

    #[test]
    fn malformed_changes_are_refused() {
        for bad in [
            json!({"entries": []}),
            json!({"entries": [{"type": "Patient", "id": "p", "ura": "1", "source": "s"}]}),
            json!({"entries": [{"type": "Endpoint", "id": "e", "ura": "1", "source": "s",
                                "resource": {"resourceType": "Endpoint", "id": "e"}}]}),
            json!({"entries": [{"type": "Organization", "id": "o", "ura": "", "source": "s"}]}),
            json!({"entries": [], "extra": 1}),
        ] {
            assert!(parse(&serde_json::to_vec(&bad).unwrap()).is_err(), "{bad}");
        }
    }
}
