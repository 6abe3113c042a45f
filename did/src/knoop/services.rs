//! Service endpoint lookup (adressering): "the endpoint of type T for DID X".
//!
//! 1. If X's current document has a service of type T, its endpoint is the answer, unless the
//!    endpoint is a reference: a DID (`did:knoop:N`) or a DID URL with `?service=<type>`, in
//!    which case the lookup continues at that DID (for type T, or the named type).
//! 2. Otherwise, if X has a `KnoopHost` service naming a DID (the node that hosts X), the lookup
//!    continues there for type T.
//!
//! At most [`MAX_HOPS`] hops; a loop is an error.

use serde::Serialize;

use crate::document::DidDocument;
use crate::url::DidUrl;

/// Service type naming the DID of the node that hosts a DID's subject.
pub const HOST_SERVICE_TYPE: &str = "KnoopHost";
/// Most references followed in one lookup.
pub const MAX_HOPS: usize = 4;

/// Where an endpoint was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHit {
    /// The DID asked about.
    pub did: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// The DID whose document holds the endpoint.
    pub found_at: String,
    /// The service's id.
    pub service: String,
    pub service_endpoint: serde_json::Value,
    /// DIDs visited, in order.
    pub path: Vec<String>,
}

/// Why a lookup found nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("{0} cannot be resolved")]
    NotResolvable(String),
    #[error("no service of type {type_} for {did}")]
    NotFound { did: String, type_: String },
    #[error("service references loop or exceed {MAX_HOPS} hops at {0}")]
    TooDeep(String),
}

/// Follows services from `did` for `type_`, resolving current documents with `resolve`.
pub fn find_endpoint(
    resolve: &dyn Fn(&str) -> Option<DidDocument>,
    did: &str,
    type_: &str,
) -> Result<EndpointHit, LookupError> {
    let mut path: Vec<String> = Vec::new();
    let mut cur = did.to_owned();
    let mut want = type_.to_owned();
    loop {
        if path.len() > MAX_HOPS || path.contains(&cur) {
            return Err(LookupError::TooDeep(cur));
        }
        path.push(cur.clone());
        let doc = resolve(&cur).ok_or_else(|| LookupError::NotResolvable(cur.clone()))?;
        if let Some(s) = doc.service_of_type(&want) {
            match reference(&s.service_endpoint) {
                Some((next, next_type)) => {
                    cur = next;
                    if let Some(t) = next_type {
                        want = t;
                    }
                    continue;
                }
                None => {
                    return Ok(EndpointHit {
                        did: did.to_owned(),
                        type_: type_.to_owned(),
                        found_at: cur,
                        service: s.id.clone(),
                        service_endpoint: s.service_endpoint.clone(),
                        path,
                    })
                }
            }
        }
        match doc
            .service_of_type(HOST_SERVICE_TYPE)
            .and_then(|s| reference(&s.service_endpoint))
        {
            Some((host, _)) => cur = host,
            None => {
                return Err(LookupError::NotFound {
                    did: did.to_owned(),
                    type_: type_.to_owned(),
                })
            }
        }
    }
}

/// A string endpoint that is a DID or DID URL: `(did, service type named by ?service=)`.
fn reference(endpoint: &serde_json::Value) -> Option<(String, Option<String>)> {
    let s = endpoint.as_str()?;
    if !s.starts_with("did:") {
        return None;
    }
    let u = DidUrl::parse(s).ok()?;
    Some((
        u.did.as_str().to_owned(),
        u.param("service").map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Service;
    use std::collections::HashMap;

    fn doc(did: &str, services: &[(&str, &str)]) -> DidDocument {
        let mut d = DidDocument::new(did);
        for (i, (t, e)) in services.iter().enumerate() {
            d.service.push(Service {
                id: format!("{did}#s{i}"),
                type_: (*t).into(),
                service_endpoint: serde_json::Value::String((*e).into()),
            });
        }
        d
    }

    #[test]
    fn follows_references_and_hosts() {
        let docs: HashMap<&str, DidDocument> = [
            (
                "did:knoop:node",
                doc(
                    "did:knoop:node",
                    &[
                        ("FHIR", "https://vendor.example/fhir"),
                        ("OAuth2Token", "https://vendor.example/token"),
                    ],
                ),
            ),
            (
                "did:knoop:org",
                doc(
                    "did:knoop:org",
                    &[
                        ("KnoopHost", "did:knoop:node"),
                        ("FHIR", "did:knoop:node?service=FHIR"),
                    ],
                ),
            ),
            (
                "did:knoop:loop",
                doc("did:knoop:loop", &[("KnoopHost", "did:knoop:loop")]),
            ),
        ]
        .into_iter()
        .collect();
        let resolve = |d: &str| docs.get(d).cloned();
        let hit = find_endpoint(&resolve, "did:knoop:org", "FHIR").unwrap();
        assert_eq!(hit.service_endpoint, "https://vendor.example/fhir");
        assert_eq!(hit.found_at, "did:knoop:node");
        let hit = find_endpoint(&resolve, "did:knoop:org", "OAuth2Token").unwrap();
        assert_eq!(hit.service_endpoint, "https://vendor.example/token");
        assert_eq!(hit.path, vec!["did:knoop:org", "did:knoop:node"]);
        assert!(matches!(
            find_endpoint(&resolve, "did:knoop:org", "Nope"),
            Err(LookupError::NotFound { .. })
        ));
        assert!(matches!(
            find_endpoint(&resolve, "did:knoop:loop", "FHIR"),
            Err(LookupError::TooDeep(_))
        ));
        assert!(matches!(
            find_endpoint(&resolve, "did:knoop:gone", "FHIR"),
            Err(LookupError::NotResolvable(_))
        ));
    }
}
