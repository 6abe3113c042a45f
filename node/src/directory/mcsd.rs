//! The directory as FHIR R4 resources (IHE mCSD): `Organization` (URA and DID identifiers,
//! type, name, city, a reference to its FHIR endpoint) and `Endpoint` (the organisation's FHIR
//! base), each search answered as a `searchset` Bundle.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

use crate::directory::Directory;
use crate::identity::credentials::{DirectoryEntry, Query};

/// The URA naming system (Dutch national care-provider id) in FHIR.
pub const URA_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/ura";
/// Most endpoints listed by one search.
const MAX_ENDPOINTS: usize = 1000;

/// `GET /fhir/Organization` search parameters.
#[derive(Deserialize, Default, Debug)]
pub struct OrganizationQuery {
    pub name: Option<String>,
    #[serde(rename = "address-city")]
    pub city: Option<String>,
    pub identifier: Option<String>,
    #[serde(rename = "_id")]
    pub id: Option<String>,
    #[serde(rename = "_count")]
    pub count: Option<usize>,
}

/// `GET /fhir/Endpoint` search parameters.
#[derive(Deserialize, Default, Debug)]
pub struct EndpointQuery {
    pub organization: Option<String>,
}

/// A stable FHIR id for a DID.
pub fn fhir_id(did: &str) -> String {
    hex::encode(&sha2::Sha256::digest(did.as_bytes())[..16])
}

fn bundle(entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    })
}

fn organization_resource(dir: &Directory, e: &DirectoryEntry) -> Value {
    let id = fhir_id(&e.did);
    let has_fhir = dir.endpoint(&e.did, "FHIR").is_some();
    json!({
        "resourceType": "Organization",
        "id": id,
        "identifier": [
            {"system": URA_SYSTEM, "value": e.ura},
            {"system": "urn:ietf:rfc:3986", "value": e.did},
        ],
        "active": true,
        "type": [{"text": e.organization_type}],
        "name": e.legal_name,
        "address": [{"city": e.city}],
        "endpoint": if has_fhir { json!([{"reference": format!("Endpoint/{id}-fhir")}]) } else { json!([]) },
    })
}

/// The organisations matching `q`, as a Bundle of `Organization`.
pub fn organizations(dir: &Directory, q: OrganizationQuery) -> Value {
    let ura = match q.identifier.as_deref() {
        None => None,
        Some(i) => match i.split_once('|') {
            Some((URA_SYSTEM, v)) | Some(("", v)) => Some(v.to_owned()),
            Some((_, _)) => return bundle(Vec::new()),
            None => Some(i.to_owned()),
        },
    };
    let entries = dir.entries(&Query {
        name: q.name,
        city: q.city,
        ura,
        limit: q.count,
        ..Default::default()
    });
    let resources = entries
        .iter()
        .filter(|e| q.id.as_ref().is_none_or(|id| *id == fhir_id(&e.did)))
        .map(|e| organization_resource(dir, e))
        .collect();
    bundle(resources)
}

/// The FHIR endpoints of the directory's organisations (of one, with `organization`), as a
/// Bundle of `Endpoint`.
pub fn endpoints(dir: &Directory, q: EndpointQuery) -> Value {
    let wanted = q
        .organization
        .as_deref()
        .map(|o| o.trim_start_matches("Organization/").to_owned());
    let mut out = Vec::new();
    for e in dir.entries(&Query {
        limit: Some(MAX_ENDPOINTS),
        ..Default::default()
    }) {
        let id = fhir_id(&e.did);
        if wanted.as_ref().is_some_and(|w| *w != id) {
            continue;
        }
        if let Some(address) = dir.endpoint(&e.did, "FHIR") {
            out.push(json!({
                "resourceType": "Endpoint",
                "id": format!("{id}-fhir"),
                "status": "active",
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "name": format!("FHIR endpoint of {}", e.legal_name),
                "managingOrganization": {"reference": format!("Organization/{id}")},
                "payloadType": [{"text": "any"}],
                "address": address,
            }));
        }
    }
    bundle(out)
}
