//! The directory resources every organisation has without publishing any (spec:
//! `specs/mcsd.md` §2): its top-level `Organization`, from its trusted organisation credential
//! (the authority for URA and name, as the LRZa is in the national guide), merged with the
//! top-level Organization it published, if any; and the `Endpoint` of the FHIR service its DID
//! document names.

use serde_json::{json, Value};

use crate::directory::ids::{fhir_id, URA_SYSTEM, URI_SYSTEM};
use crate::directory::Directory;
use crate::identity::credentials::DirectoryEntry;

/// The one URL of a DID service endpoint (a string, or the first string of a list or map).
pub fn address_of(endpoint: &Value) -> Option<String> {
    match endpoint {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(address_of),
        Value::Object(o) => o.values().find_map(address_of),
        _ => None,
    }
}

/// The id of the Endpoint derived from `did`'s FHIR service.
pub fn endpoint_id(did: &str) -> String {
    format!("{}-fhir", fhir_id(did))
}

/// The FHIR base URL `e`'s DID document names, if any.
pub fn fhir_address(dir: &Directory, e: &DirectoryEntry) -> Option<String> {
    dir.endpoint(&e.did, "FHIR").and_then(|v| address_of(&v))
}

/// The top-level Organization of `e`. `published` is the top-level Organization the
/// organisation published itself: its elements are kept, except that the credential decides
/// the URA identifier and the name (a different published name becomes an `alias`); the DID
/// joins the identifiers and the derived Endpoint joins the endpoints.
pub fn organization(e: &DirectoryEntry, address: Option<&str>, published: Option<&Value>) -> Value {
    let mut r = match published {
        Some(p) => p.clone(),
        None => json!({"resourceType": "Organization", "id": fhir_id(&e.did), "active": true}),
    };
    let mut identifier: Vec<Value> = r["identifier"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter(|i| i["system"] != URA_SYSTEM && i["system"] != URI_SYSTEM)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !e.ura.is_empty() {
        identifier.insert(0, json!({"system": URA_SYSTEM, "value": e.ura}));
    }
    identifier.push(json!({"system": URI_SYSTEM, "value": e.did}));
    r["identifier"] = json!(identifier);
    if let Some(name) = r["name"].as_str().filter(|n| *n != e.legal_name) {
        let mut alias = r["alias"].as_array().cloned().unwrap_or_default();
        if !alias.iter().any(|a| a == name) {
            alias.push(json!(name));
        }
        r["alias"] = json!(alias);
    }
    r["name"] = json!(e.legal_name);
    if r.get("type").is_none() && !e.organization_type.is_empty() {
        r["type"] = json!([{"text": e.organization_type}]);
    }
    if r.get("address").is_none() && !e.city.is_empty() {
        r["address"] = json!([{"city": e.city}]);
    }
    if address.is_some() {
        let own = json!({"reference": format!("Endpoint/{}", endpoint_id(&e.did))});
        let mut endpoints = r["endpoint"].as_array().cloned().unwrap_or_default();
        if !endpoints.contains(&own) {
            endpoints.push(own);
        }
        r["endpoint"] = json!(endpoints);
    }
    r
}

/// The Endpoint of `e`'s FHIR service at `address`, managed by the Organization `org_id`.
pub fn endpoint(e: &DirectoryEntry, address: &str, org_id: &str) -> Value {
    json!({
        "resourceType": "Endpoint",
        "id": endpoint_id(&e.did),
        "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                           "code": "hl7-fhir-rest"},
        "name": format!("FHIR endpoint of {}", e.legal_name),
        "managingOrganization": {"reference": format!("Organization/{org_id}")},
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                     "code": "any"}]}],
        "address": address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_endpoints_give_one_address() {
        assert_eq!(
            address_of(&json!("https://a")).as_deref(),
            Some("https://a")
        );
        assert_eq!(
            address_of(&json!(["https://a", "https://b"])).as_deref(),
            Some("https://a")
        );
        assert_eq!(
            address_of(&json!({"origins": ["https://c"]})).as_deref(),
            Some("https://c")
        );
        assert_eq!(address_of(&json!(7)), None);
    }

    #[test]
    fn the_credential_decides_ura_and_name_of_a_published_organization() {
        let e = DirectoryEntry {
            did: "did:knoop:h".into(),
            ura: "99990011".into(),
            legal_name: "Ziekenhuis Leiden".into(),
            ..Default::default()
        };
        let published = json!({"resourceType": "Organization", "id": "org-1",
            "identifier": [{"system": URA_SYSTEM, "value": "12345678"},
                           {"system": "urn:agb", "value": "1"}],
            "name": "ZL", "type": [{"text": "ziekenhuis"}]});
        let r = organization(&e, Some("https://h/fhir"), Some(&published));
        assert_eq!(r["id"], "org-1");
        assert_eq!(r["name"], "Ziekenhuis Leiden");
        assert_eq!(r["alias"], json!(["ZL"]));
        assert_eq!(
            r["identifier"],
            json!([{"system": URA_SYSTEM, "value": "99990011"},
                   {"system": "urn:agb", "value": "1"},
                   {"system": URI_SYSTEM, "value": "did:knoop:h"}])
        );
        assert_eq!(
            r["endpoint"],
            json!([{"reference": format!("Endpoint/{}", endpoint_id("did:knoop:h"))}])
        );
    }
}
