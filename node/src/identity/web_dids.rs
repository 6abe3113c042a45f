//! did:web for the DIDs hosted here (the national guide's GFI-001; spec: `specs/did-web.md`).
//!
//! Each `did:knoop` DID hosted on this node has a did:web id under the node's public API:
//! `did:web:<host>[%3A<port>][:<path>]:knoop:<did:knoop id>`, whose document is served at
//! `<public URL>/knoop/<did:knoop id>/did.json` (did:web method, "Read"). The document is made
//! from the current did:knoop document at every request, so the two never differ: the same
//! keys, relationships and services, with every id under the DID rewritten to the did:web id,
//! and `alsoKnownAs` naming the did:knoop DID. A DID that is not hosted here, deactivated or
//! unknown has no did:web document (did:web deletes a DID by removing its file).

use std::sync::Arc;

use serde_json::Value;
use url::Url;

use crate::identity::did_ops::DidOps;
pub use crate::identity::web_id::{web_did_of, PATH_SEGMENT};

/// did:web ids and documents for the hosted DIDs, under the public base URL that the DID
/// operations hold ([`DidOps::web_base`]).
pub struct WebDids {
    dids: Arc<DidOps>,
}

impl WebDids {
    /// did:web under `public_url`, which becomes the DID operations' base for `alsoKnownAs`;
    /// `None` when it cannot carry one (an IP address: did:web needs a domain name).
    pub fn new(dids: Arc<DidOps>, public_url: &str) -> Option<Self> {
        let base = Url::parse(public_url).ok()?;
        web_did_of(&base, "did:knoop:x")?;
        let _ = dids.web_base.set(base);
        Some(WebDids { dids })
    }

    /// The did:web id of `knoop_did` (whether or not it is hosted here).
    pub fn web_did(&self, knoop_did: &str) -> Option<String> {
        self.dids.web_alias(knoop_did)
    }

    /// The did:web document of the hosted DID `did:knoop:<id>`.
    pub fn document(&self, id: &str) -> Option<Value> {
        let knoop = format!("did:knoop:{id}");
        let hosted = self.dids.hosted().ok()?;
        if !hosted.contains(&knoop) {
            return None;
        }
        let (_, doc) = self.dids.state.current(&knoop)?;
        let web = self.web_did(&knoop)?;
        Some(translate(serde_json::to_value(&doc).ok()?, &knoop, &web))
    }
}

/// The did:knoop document `doc` as the did:web `web`'s: `id`, verification method ids and
/// controllers, relationship references and service ids under `knoop` move to `web`;
/// `alsoKnownAs` names `knoop`.
pub fn translate(mut doc: Value, knoop: &str, web: &str) -> Value {
    let move_id = |v: &mut Value| {
        if let Some(s) = v.as_str() {
            if s == knoop || s.starts_with(&format!("{knoop}#")) {
                *v = Value::String(format!("{web}{}", &s[knoop.len()..]));
            }
        }
    };
    let Some(obj) = doc.as_object_mut() else {
        return doc;
    };
    if let Some(id) = obj.get_mut("id") {
        move_id(id);
    }
    for vm in obj
        .get_mut("verificationMethod")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for field in ["id", "controller"] {
            if let Some(v) = vm.get_mut(field) {
                move_id(v);
            }
        }
    }
    for rel in [
        "authentication",
        "assertionMethod",
        "keyAgreement",
        "capabilityInvocation",
        "capabilityDelegation",
    ] {
        for r in obj
            .get_mut(rel)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            move_id(r);
        }
    }
    for s in obj
        .get_mut("service")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(id) = s.get_mut("id") {
            move_id(id);
        }
    }
    let mut aka: Vec<Value> = vec![Value::String(knoop.to_owned())];
    for a in obj
        .get("alsoKnownAs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if a != knoop && a != web {
            aka.push(a.clone());
        }
    }
    obj.insert("alsoKnownAs".into(), Value::Array(aka));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_move_every_id_under_the_did() {
        let k = "did:knoop:abc";
        let w = "did:web:x.example:knoop:abc";
        let doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": k,
            "controller": ["did:knoop:other"],
            "verificationMethod": [{"id": format!("{k}#key-1"), "type": "Multikey", "controller": k, "publicKeyMultibase": "z6Mk"}],
            "authentication": [format!("{k}#key-1")],
            "assertionMethod": [format!("{k}#key-1")],
            "capabilityInvocation": [format!("{k}#key-1")],
            "service": [{"id": format!("{k}#fhir"), "type": "FHIR", "serviceEndpoint": "https://ehr.example/fhir"},
                        {"id": format!("{k}#host"), "type": "KnoopHost", "serviceEndpoint": "did:knoop:node"}],
        });
        let out = translate(doc, k, w);
        assert_eq!(out["id"], w);
        assert_eq!(out["alsoKnownAs"], json!([k]));
        assert_eq!(
            out["controller"],
            json!(["did:knoop:other"]),
            "other DIDs stay"
        );
        assert_eq!(out["verificationMethod"][0]["id"], format!("{w}#key-1"));
        assert_eq!(out["verificationMethod"][0]["controller"], w);
        for rel in ["authentication", "assertionMethod", "capabilityInvocation"] {
            assert_eq!(out[rel], json!([format!("{w}#key-1")]), "{rel}");
        }
        assert_eq!(out["service"][0]["id"], format!("{w}#fhir"));
        assert_eq!(out["service"][1]["serviceEndpoint"], "did:knoop:node");
        assert!(!out.to_string().contains(&format!("{k}#")), "{out}");
    }
}
