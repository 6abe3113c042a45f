//! What the update client learned from external Administration Directories (spec:
//! `specs/mcsd.md` §6), as the view takes it: resources under the ids the node gives them,
//! each with the directory it came from and the URA of the organisation it belongs to. The
//! update client replaces a directory's share after each round; the view reads all of it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::Value;

/// One resource from an external directory.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalResource {
    /// The resource, with its node-given id and references (and `meta.source`).
    pub resource: Value,
    /// The FHIR base of the directory it came from.
    pub source: String,
    /// The URA of the top-level organisation it belongs to.
    pub ura: String,
    /// Precedence when two directories give one `(type, id)`: an organisation's own directory
    /// (1) before the root (0).
    pub rank: u8,
}

/// `(type, id)` → resource.
pub type Resources = BTreeMap<(String, String), ExternalResource>;

/// The resources, per source directory.
#[derive(Default)]
pub struct External {
    by_source: RwLock<BTreeMap<String, Resources>>,
}

impl External {
    /// Replaces everything learned from `source`.
    pub fn replace(&self, source: &str, resources: Resources) {
        if let Ok(mut m) = self.by_source.write() {
            m.insert(source.to_owned(), resources);
        }
    }

    /// What was learned from `source`.
    pub fn share(&self, source: &str) -> Resources {
        self.by_source
            .read()
            .ok()
            .and_then(|m| m.get(source).cloned())
            .unwrap_or_default()
    }

    /// Everything learned, from every directory; of two for one `(type, id)`, the higher rank
    /// (then the first source) is kept.
    pub fn all(&self) -> Resources {
        let mut out = Resources::new();
        if let Ok(m) = self.by_source.read() {
            for resources in m.values() {
                for (k, r) in resources {
                    if out.get(k).is_none_or(|o| o.rank < r.rank) {
                        out.insert(k.clone(), r.clone());
                    }
                }
            }
        }
        out
    }
}
