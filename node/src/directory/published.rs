//! Directory resources published by their organisations (spec: `specs/mcsd.md` §5): the change
//! format on the network (a FHIR `transaction` Bundle of `PUT` and `DELETE` entries, published
//! by the organisation's DID as a transaction of [`CONTENT_TYPE`]), the profile checks a
//! resource passes before it is published and again when it is indexed, and the index of every
//! organisation's latest claim on each resource.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::directory::fhir_search::{self, Kind};
use crate::directory::ids::{is_fhir_id, PROVENANCE_PARTICIPANT_TYPE, URA_SYSTEM};
use crate::store::NodeStore;

/// The content type of a change to the directory on the network.
pub const CONTENT_TYPE: &str = "application/knoop-mcsd+json";
/// The most entries one change carries.
pub const MAX_ENTRIES: usize = 100;

/// One change to one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub type_: String,
    pub id: String,
    /// The new resource, or `None` for a delete.
    pub resource: Option<Value>,
}

/// The network form of `changes`: a `transaction` Bundle (`specs/mcsd.md` §5.1).
pub fn to_bundle(changes: &[Change]) -> Value {
    let entries: Vec<Value> = changes
        .iter()
        .map(|c| {
            let url = format!("{}/{}", c.type_, c.id);
            match &c.resource {
                Some(r) => json!({"resource": r, "request": {"method": "PUT", "url": url}}),
                None => json!({"request": {"method": "DELETE", "url": url}}),
            }
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Reads a change Bundle; every resource passes [`check_resource`].
pub fn from_bundle(payload: &[u8]) -> Result<Vec<Change>, String> {
    let b: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    if b["resourceType"] != "Bundle" || b["type"] != "transaction" {
        return Err("not a transaction Bundle".into());
    }
    let entries = b["entry"]
        .as_array()
        .filter(|e| !e.is_empty())
        .ok_or("a change has entries")?;
    if entries.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} entries"));
    }
    let mut out: Vec<Change> = Vec::new();
    for e in entries {
        let method = e["request"]["method"].as_str().unwrap_or_default();
        let url = e["request"]["url"].as_str().unwrap_or_default();
        let (type_, id) = url
            .split_once('/')
            .filter(|(t, i)| fhir_search::params_of(t).is_some() && is_fhir_id(i))
            .ok_or_else(|| format!("{url}: not a directory resource"))?;
        if out.iter().any(|c| c.type_ == type_ && c.id == id) {
            return Err(format!("{url} changes twice"));
        }
        let resource = match method {
            "PUT" => {
                let r = e
                    .get("resource")
                    .ok_or_else(|| format!("{url}: PUT without a resource"))?;
                check_resource(type_, id, r)?;
                Some(r.clone())
            }
            "DELETE" if e.get("resource").is_none() => None,
            _ => return Err(format!("{url}: method {method} is not PUT or DELETE")),
        };
        out.push(Change {
            type_: type_.to_owned(),
            id: id.to_owned(),
            resource,
        });
    }
    Ok(out)
}

/// The nl-gf profile rules a published resource meets (`specs/mcsd.md` §5.2): its type and
/// id, FHIR JSON without empty elements, no `implicitRules` or `modifierExtension`, the
/// elements the profile requires, and an author-assigned identifier (`AssignedId`) wherever the
/// profile slices one in.
pub fn check_resource(type_: &str, id: &str, r: &Value) -> Result<(), String> {
    if fhir_search::params_of(type_).is_none() {
        return Err(format!(
            "{type_} is not a directory resource (served: {})",
            fhir_search::TYPES.join(", ")
        ));
    }
    if r["resourceType"] != type_ {
        return Err(format!("the resource is not a {type_}"));
    }
    if r["id"] != id {
        return Err(format!("the resource's id is not {id}"));
    }
    if !is_fhir_id(id) {
        return Err(format!("{id} is not a FHIR id"));
    }
    if let Some(path) = empty_element(r, type_) {
        return Err(format!("{path} is empty (FHIR JSON has no empty elements)"));
    }
    for forbidden in ["implicitRules", "modifierExtension"] {
        if r.get(forbidden).is_some() {
            return Err(format!(
                "{type_}.{forbidden} is not allowed (nl-gf profile)"
            ));
        }
    }
    let required: &[&str] = match type_ {
        "Organization" => &["name", "type"],
        "Location" => &["name", "type", "status", "managingOrganization"],
        "HealthcareService" => &["name", "type", "providedBy"],
        "PractitionerRole" => &["practitioner", "organization", "code"],
        _ => &[
            "status",
            "connectionType",
            "payloadType",
            "address",
            "managingOrganization",
        ],
    };
    for element in required {
        if r.get(*element).is_none() {
            return Err(format!("{type_}.{element} is required (nl-gf profile)"));
        }
    }
    if type_ != "Endpoint" && assigner(r).is_none() {
        return Err(format!(
            "{type_} needs an author-assigned identifier: system, value and an assigner \
             identified by its URA ({URA_SYSTEM}) of type {PROVENANCE_PARTICIPANT_TYPE}#author"
        ));
    }
    if type_ == "Organization" && ura(r).is_none() && r.get("partOf").is_none() {
        return Err(
            "an Organization has a URA identifier or is partOf another (ura-identifier-or-partof)"
                .into(),
        );
    }
    if type_ == "Endpoint" && !r["address"].is_string() {
        return Err("Endpoint.address is one URL".into());
    }
    Ok(())
}

/// The URA of the assigner of `r`'s author-assigned identifier.
pub fn assigner(r: &Value) -> Option<&str> {
    r["identifier"].as_array()?.iter().find_map(|i| {
        let a = &i["assigner"]["identifier"];
        let author = a["type"]["coding"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["system"] == PROVENANCE_PARTICIPANT_TYPE && c["code"] == "author")
        });
        (i["system"].is_string() && i["value"].is_string() && a["system"] == URA_SYSTEM && author)
            .then(|| a["value"].as_str())
            .flatten()
    })
}

/// The URA identifier of `r` (a top-level Organization).
pub fn ura(r: &Value) -> Option<&str> {
    r["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == URA_SYSTEM)
        .and_then(|i| i["value"].as_str())
}

/// The relative references of `r` along its reference search parameters (the links the
/// authority rules check), except to `Practitioner`, which the directory does not serve.
pub fn links(type_: &str, r: &Value) -> Vec<(String, String)> {
    fhir_search::params_of(type_)
        .unwrap_or(&[])
        .iter()
        .filter(|d| d.kind == Kind::Reference && d.name != "practitioner")
        .flat_map(|d| fhir_search::references(r, type_, d.name))
        .collect()
}

/// The path of the first empty string, array or object in `v`, if any.
fn empty_element(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) if s.is_empty() => Some(path.to_owned()),
        Value::Array(a) if a.is_empty() => Some(path.to_owned()),
        Value::Object(o) if o.is_empty() => Some(path.to_owned()),
        Value::Array(a) => a.iter().find_map(|x| empty_element(x, path)),
        Value::Object(o) => o
            .iter()
            .find_map(|(k, x)| empty_element(x, &format!("{path}.{k}"))),
        _ => None,
    }
}

/// An organisation's latest claim on one resource.
#[derive(Clone, Debug)]
pub struct Claim {
    /// `(Lamport clock, signing time, transaction id)`: the later claim wins.
    pub order: (u64, u64, String),
    /// The resource, or `None` once deleted.
    pub resource: Option<Value>,
}

/// Resource `(type, id)` → publisher DID → its latest claim.
pub type Claims = HashMap<(String, String), BTreeMap<String, Claim>>;

#[derive(Default)]
struct Index {
    seen: u64,
    claims: Claims,
}

/// The index of the directory changes published on the network.
pub struct Published {
    store: Arc<dyn NodeStore>,
    index: RwLock<Index>,
}

impl Published {
    pub fn new(store: Arc<dyn NodeStore>) -> Self {
        Published {
            store,
            index: RwLock::new(Index::default()),
        }
    }

    /// Reads the changes committed since the last call.
    pub fn catch_up(&self) {
        let after = match self.index.read() {
            Ok(i) => i.seen,
            Err(_) => return,
        };
        let (last, txs) = crate::store::read_by_type(self.store.as_ref(), CONTENT_TYPE, after);
        if txs.is_empty() && last == after {
            return;
        }
        let Ok(mut idx) = self.index.write() else {
            return;
        };
        for (_, tx, payload) in &txs {
            let header = tx.header();
            let Some(owner) = crate::identity::did_state::signer_did(tx) else {
                tracing::info!(tx = %tx.id(), "directory change not signed by a DID ignored");
                continue;
            };
            let changes = match from_bundle(payload) {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(tx = %tx.id(), error = %e, "directory change ignored");
                    continue;
                }
            };
            let order = (header.lc, header.sigt, tx.id().to_hex());
            for c in changes {
                let slot = idx
                    .claims
                    .entry((c.type_, c.id))
                    .or_default()
                    .entry(owner.clone());
                let claim = Claim {
                    order: order.clone(),
                    resource: c.resource,
                };
                match slot {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(claim);
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        if o.get().order < claim.order {
                            o.insert(claim);
                        }
                    }
                }
            }
        }
        idx.seen = idx.seen.max(last);
    }

    /// The claims.
    pub fn snapshot(&self) -> Claims {
        self.index
            .read()
            .map(|i| i.claims.clone())
            .unwrap_or_default()
    }

    /// `owner`'s latest claim on `(type_, id)`.
    pub fn claim(&self, type_: &str, id: &str, owner: &str) -> Option<Claim> {
        let i = self.index.read().ok()?;
        i.claims
            .get(&(type_.to_owned(), id.to_owned()))?
            .get(owner)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned() -> Value {
        json!([{"system": "https://hospital.example/locations", "value": "7",
                "assigner": {"identifier": {"system": URA_SYSTEM, "value": "99990011",
                  "type": {"coding": [{"system": PROVENANCE_PARTICIPANT_TYPE, "code": "author"}]}}}}])
    }

    fn location() -> Value {
        json!({"resourceType": "Location", "id": "loc-1", "identifier": assigned(),
               "name": "Polikliniek", "status": "active",
               "type": [{"coding": [{"system": "urn:t", "code": "OF"}]}],
               "managingOrganization": {"reference": "Organization/org-1"}})
    }

    #[test]
    fn a_profiled_resource_passes_and_its_assigner_and_links_are_read() {
        let r = location();
        assert_eq!(check_resource("Location", "loc-1", &r), Ok(()));
        assert_eq!(assigner(&r), Some("99990011"));
        assert_eq!(
            links("Location", &r),
            vec![("Organization".to_owned(), "org-1".to_owned())]
        );
    }

    #[test]
    fn profile_violations_are_named() {
        let mut r = location();
        r.as_object_mut().map(|o| o.remove("status"));
        assert!(check_resource("Location", "loc-1", &r)
            .unwrap_err()
            .contains("status"));
        let mut r = location();
        r["alias"] = json!([]);
        assert!(check_resource("Location", "loc-1", &r)
            .unwrap_err()
            .contains("empty"));
        let mut r = location();
        r["identifier"][0]["assigner"]["identifier"]["type"] = json!({"text": "author"});
        assert!(check_resource("Location", "loc-1", &r)
            .unwrap_err()
            .contains("author-assigned"));
        assert!(check_resource("Location", "loc-2", &location()).is_err());
        assert!(check_resource("Practitioner", "loc-1", &location()).is_err());
        let org = json!({"resourceType": "Organization", "id": "o", "identifier": assigned(),
                         "name": "Afdeling", "type": [{"text": "afdeling"}]});
        assert!(check_resource("Organization", "o", &org)
            .unwrap_err()
            .contains("partOf"));
    }

    /// `specs/vectors/mcsd.json`: what a directory change on the network reads as.
    #[test]
    fn the_change_vectors_read_as_specified() {
        let v: Value = serde_json::from_str(include_str!("../../../specs/vectors/mcsd.json"))
            .expect("mcsd.json");
        assert_eq!(v["content_type"], CONTENT_TYPE);
        for case in v["valid"].as_array().unwrap() {
            let bytes = serde_json::to_vec(&case["content"]).unwrap();
            let changes = from_bundle(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
            let got: Vec<Value> = changes
                .iter()
                .map(|c| json!({"type": c.type_, "id": c.id, "resource": c.resource}))
                .collect();
            assert_eq!(Value::Array(got), case["changes"], "{}", case["name"]);
        }
        for case in v["invalid"].as_array().unwrap() {
            let bytes = match &case["content"] {
                Value::String(s) => s.as_bytes().to_vec(),
                c => serde_json::to_vec(c).unwrap(),
            };
            let err = from_bundle(&bytes).expect_err(case["name"].as_str().unwrap());
            let want = case["error"].as_str().unwrap();
            assert!(
                err.contains(want),
                "{}: {err} (wanted {want})",
                case["name"]
            );
        }
    }

    #[test]
    fn change_bundles_round_trip_and_refuse_doubles() {
        let changes = vec![
            Change {
                type_: "Location".into(),
                id: "loc-1".into(),
                resource: Some(location()),
            },
            Change {
                type_: "Endpoint".into(),
                id: "ep-1".into(),
                resource: None,
            },
        ];
        let bytes = serde_json::to_vec(&to_bundle(&changes)).unwrap();
        assert_eq!(from_bundle(&bytes).unwrap(), changes);
        let double = to_bundle(&[changes[0].clone(), changes[0].clone()]);
        assert!(from_bundle(&serde_json::to_vec(&double).unwrap()).is_err());
        assert!(from_bundle(b"{}").is_err());
    }
}
