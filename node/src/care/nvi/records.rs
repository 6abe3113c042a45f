//! The NVI registrations a node's tenants made (spec: `specs/nvi.md` §4), kept so that a `List`
//! can be read and deleted by its id, and found by the source device that registered it: under
//! `nl/<tenant DID>/<List id>` in the `private` family, each with the patient's pseudonym (never
//! the BSN), the category code and the source device's identifier.

use serde::{Deserialize, Serialize};

use crate::store::NodeStore;

/// One `List` registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The patient's pseudonym `P`, hex.
    pub p: String,
    /// The data category codes (resource type names) of the List; its id is of the first.
    pub codes: Vec<String>,
    /// `List.source.identifier`: `(system, value)` of the registering device, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(String, String)>,
    pub created_ms: u64,
}

fn prefix(tenant: &str) -> Vec<u8> {
    format!("nl/{tenant}/").into_bytes()
}

fn key(tenant: &str, id: &str) -> Vec<u8> {
    let mut k = prefix(tenant);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The registration records of the tenants, in the node's store.
pub struct Records<'a> {
    pub store: &'a dyn NodeStore,
}

impl Records<'_> {
    pub fn put(&self, tenant: &str, r: &Record) -> Result<(), String> {
        let v = serde_json::to_vec(r).map_err(|e| e.to_string())?;
        self.store
            .put_private(&key(tenant, &r.id), &v)
            .map_err(|e| e.to_string())
    }

    pub fn get(&self, tenant: &str, id: &str) -> Result<Option<Record>, String> {
        let Some(v) = self
            .store
            .get_private(&key(tenant, id))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Every record of `tenant`.
    pub fn all(&self, tenant: &str) -> Result<Vec<Record>, String> {
        Ok(self
            .store
            .scan_private(&prefix(tenant))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }

    pub fn remove(&self, tenant: &str, ids: &[String]) -> Result<(), String> {
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| key(tenant, id)).collect();
        self.store.delete_private(&keys).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_kept_per_tenant() {
        let dir = std::env::temp_dir().join(format!("knoop-nl-test-{}", rand::random::<u64>()));
        let store = crate::store::RocksStore::open(&dir).unwrap();
        let records = Records { store: &store };
        let r = |id: &str, code: &str| Record {
            id: id.into(),
            p: "ab".repeat(32),
            codes: vec![code.into()],
            source: Some(("urn:oid:1.2".into(), "ehr-7".into())),
            created_ms: 1,
        };
        records.put("did:knoop:a", &r("1", "Condition")).unwrap();
        records.put("did:knoop:a", &r("2", "Encounter")).unwrap();
        records.put("did:knoop:ab", &r("3", "Encounter")).unwrap();
        assert_eq!(
            records.get("did:knoop:a", "1").unwrap(),
            Some(r("1", "Condition"))
        );
        assert_eq!(records.get("did:knoop:ab", "1").unwrap(), None);
        assert_eq!(records.all("did:knoop:a").unwrap().len(), 2);
        records.remove("did:knoop:a", &["1".into()]).unwrap();
        assert_eq!(records.all("did:knoop:a").unwrap().len(), 1);
        assert_eq!(records.all("did:knoop:ab").unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
