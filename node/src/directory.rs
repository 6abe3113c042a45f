//! The care directory: the network's organisations as their published, verified organisation
//! credentials describe them, with the service endpoints their DID documents name, and the
//! mCSD resources (locations, services, roles, endpoints, departments) the organisations
//! publish themselves. [`view`] materialises it all as versioned FHIR resources; [`mcsd`]
//! serves them as IHE mCSD Query and Administration Directories; [`admin`] takes a hosted
//! organisation's changes and publishes them to the network.

pub mod admin;
pub mod bridge;
pub mod derived;
pub mod external;
pub mod fhir_search;
pub mod ids;
pub mod mcsd;
pub mod published;
pub mod r4;
pub mod update_client;
pub mod view;

use std::sync::Arc;

use serde_json::Value;

use crate::identity::credentials::{Credentials, DirectoryEntry, Query};
use crate::identity::did_state::DidState;

/// Service types a directory answer resolves for each organisation.
pub const ENDPOINT_TYPES: [&str; 2] = ["FHIR", "OAuth2Token"];

/// The directory over the credential index and the DID state.
pub struct Directory {
    credentials: Arc<Credentials>,
    dids: Arc<DidState>,
}

impl Directory {
    pub fn new(credentials: Arc<Credentials>, dids: Arc<DidState>) -> Self {
        Directory { credentials, dids }
    }

    /// Organisations matching `q`, each with its endpoints.
    pub fn search(&self, q: &Query) -> Vec<Value> {
        self.credentials
            .directory(q)
            .iter()
            .map(|e| self.with_endpoints(e))
            .collect()
    }

    /// The organisation with URA `ura` among `hosted` (a node's tenants).
    pub fn hosted_by_ura(&self, ura: &str, hosted: &[String]) -> Option<DirectoryEntry> {
        self.credentials.hosted_by_ura(ura, hosted)
    }

    /// Organisations matching `q`, as indexed.
    pub fn entries(&self, q: &Query) -> Vec<DirectoryEntry> {
        self.credentials.directory(q)
    }

    /// The organisation `did` with its endpoints, or just `{"did": did}` when it has no
    /// organisation credential in the directory.
    pub fn organisation(&self, did: &str) -> Value {
        match self.credentials.organisation(did) {
            Some(e) => self.with_endpoints(&e),
            None => serde_json::json!({ "did": did }),
        }
    }

    /// The service endpoint of type `type_` that `did`'s DID document names.
    pub fn endpoint(&self, did: &str, type_: &str) -> Option<Value> {
        self.dids
            .endpoint(did, type_)
            .ok()
            .map(|hit| hit.service_endpoint)
    }

    fn with_endpoints(&self, e: &DirectoryEntry) -> Value {
        let mut endpoints = serde_json::Map::new();
        for t in ENDPOINT_TYPES {
            if let Some(url) = self.endpoint(&e.did, t) {
                endpoints.insert(t.into(), url);
            }
        }
        let mut v = serde_json::to_value(e).unwrap_or_default();
        v["endpoints"] = Value::Object(endpoints);
        v
    }
}
