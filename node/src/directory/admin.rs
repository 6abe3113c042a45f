//! A hosted organisation's mCSD Administration Directory (spec: `specs/mcsd.md` §5): create,
//! update, delete and transaction, as the national guide's admin-client CapabilityStatement
//! asks, checked against the nl-gf profiles and the authority rules, published to the network
//! as one change signed by the organisation, and in this node's view before the answer
//! returns (read-your-writes). All entries of a request pass, or none is published.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::directory::fhir_search;
use crate::directory::ids::{is_fhir_id, URA_SYSTEM};
use crate::directory::mcsd::Outcome;
use crate::directory::published::{self, Change, Published, CONTENT_TYPE, MAX_ENTRIES};
use crate::directory::r4::map_references;
use crate::directory::view::{DirectoryView, Version};
use crate::directory::Directory;
use crate::identity::did_ops::DidOps;

/// The largest change the network carries (the log's content limit, less room to spare).
pub const MAX_CHANGE_BYTES: usize = 250 * 1024;

/// The hosted organisation an Administration Directory belongs to.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub did: String,
    pub ura: String,
}

/// One request of an administration client.
#[derive(Clone, Debug)]
pub enum Request {
    /// `POST [type]`; `full_url` is the entry's `urn:uuid:` in a transaction, which references
    /// in the other entries may use.
    Create {
        type_: String,
        resource: Value,
        full_url: Option<String>,
    },
    /// `PUT [type]/[id]`, optionally `If-Match: W/"<vid>"`.
    Update {
        type_: String,
        id: String,
        resource: Value,
        if_match: Option<String>,
    },
    /// `DELETE [type]/[id]`.
    Delete { type_: String, id: String },
}

/// What one request did.
#[derive(Clone, Debug)]
pub struct Done {
    pub type_: String,
    pub id: String,
    /// `true` when the resource did not exist before.
    pub created: bool,
    /// The version the view now has (`None` after a delete).
    pub version: Option<Version>,
}

/// The Administration Directories of the hosted organisations.
pub struct AdminDirectory {
    view: Arc<DirectoryView>,
    published: Arc<Published>,
    directory: Arc<Directory>,
    dids: Arc<DidOps>,
}

impl AdminDirectory {
    pub fn new(
        view: Arc<DirectoryView>,
        published: Arc<Published>,
        directory: Arc<Directory>,
        dids: Arc<DidOps>,
    ) -> Self {
        AdminDirectory {
            view,
            published,
            directory,
            dids,
        }
    }

    /// The hosted organisation with URA `ura` (and a trusted organisation credential).
    pub fn tenant(&self, ura: &str) -> Result<Tenant, Outcome> {
        let hosted = self.dids.hosted().unwrap_or_default();
        self.directory
            .hosted_by_ura(ura, &hosted)
            .map(|e| Tenant {
                did: e.did,
                ura: e.ura,
            })
            .ok_or_else(|| {
                Outcome::not_found(format!(
                    "no organisation with URA {ura} (and a trusted organisation credential) is hosted on this node"
                ))
            })
    }

    /// The view the directory is served from.
    pub fn view(&self) -> &Arc<DirectoryView> {
        &self.view
    }

    /// Checks every request, publishes them as one change, and answers once the view has it.
    pub async fn apply(&self, t: &Tenant, requests: Vec<Request>) -> Result<Vec<Done>, Outcome> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        if requests.len() > MAX_ENTRIES {
            return Err(Outcome::new(
                413,
                "too-costly",
                format!("at most {MAX_ENTRIES} entries per request"),
            ));
        }
        let planned = self.plan(t, requests)?;
        let changes: Vec<Change> = planned
            .iter()
            .filter(|(_, publish, _)| *publish)
            .map(|(c, _, _)| c.clone())
            .collect();
        if !changes.is_empty() {
            let bytes = serde_json::to_vec(&published::to_bundle(&changes))
                .map_err(|e| Outcome::new(500, "exception", e.to_string()))?;
            if bytes.len() > MAX_CHANGE_BYTES {
                return Err(Outcome::new(
                    413,
                    "too-long",
                    format!(
                        "the change is {} bytes; at most {MAX_CHANGE_BYTES}",
                        bytes.len()
                    ),
                ));
            }
            self.dids
                .publish_as(&t.did, CONTENT_TYPE, bytes)
                .await
                .map_err(|e| Outcome::new(503, "transient", format!("not published: {e}")))?;
            let view = self.view.clone();
            let _ = tokio::task::spawn_blocking(move || view.refresh()).await;
        }
        Ok(planned
            .into_iter()
            .map(|(c, _, existed)| {
                let version = self
                    .view
                    .latest(&c.type_, &c.id)
                    .filter(|v| v.resource.is_some() && c.resource.is_some());
                Done {
                    created: c.resource.is_some() && !existed,
                    type_: c.type_,
                    id: c.id,
                    version,
                }
            })
            .collect())
    }

    /// The changes `requests` make, each with whether it must be published (a delete of
    /// what was never published changes nothing) and whether the resource existed, or the
    /// first request that fails its checks.
    fn plan(
        &self,
        t: &Tenant,
        requests: Vec<Request>,
    ) -> Result<Vec<(Change, bool, bool)>, Outcome> {
        // Ids for creates first, so references to their urn:uuid can be rewritten.
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        let mut assigned: Vec<Option<String>> = Vec::new();
        for r in &requests {
            match r {
                Request::Create {
                    type_, full_url, ..
                } => {
                    let id = new_id();
                    if let Some(u) = full_url {
                        renames.insert(u.clone(), format!("{type_}/{id}"));
                    }
                    assigned.push(Some(id));
                }
                _ => assigned.push(None),
            }
        }
        let mut changes = Vec::new();
        for (r, id) in requests.into_iter().zip(assigned) {
            let (type_, id, resource, if_match) = match r {
                Request::Create {
                    type_, resource, ..
                } => {
                    let id = id.unwrap_or_else(new_id);
                    let mut resource = resource;
                    resource["id"] = Value::String(id.clone());
                    (type_, id, Some(resource), None)
                }
                Request::Update {
                    type_,
                    id,
                    resource,
                    if_match,
                } => {
                    if resource["id"] != id.as_str() {
                        return Err(Outcome::invalid(format!(
                            "the resource's id must be {id}, as in the URL"
                        )));
                    }
                    (type_, id, Some(resource), if_match)
                }
                Request::Delete { type_, id } => (type_, id, None, None),
            };
            self.check_ownership(t, &type_, &id, if_match.as_deref())?;
            let resource = match resource {
                Some(mut res) => {
                    if let Some(o) = res.as_object_mut() {
                        o.remove("meta"); // the directory keeps versionId and lastUpdated
                    }
                    map_references(&mut res, &mut |r| renames.get(r).cloned());
                    check_for(t, &type_, &id, &res)?;
                    Some(res)
                }
                None => None,
            };
            changes.push(Change {
                type_,
                id,
                resource,
            });
        }
        self.check_links(t, &changes)?;
        self.check_one_top_level(t, &changes)?;
        Ok(changes
            .into_iter()
            .map(|c| {
                let publish = c.resource.is_some()
                    || self
                        .published
                        .claim(&c.type_, &c.id, &t.did)
                        .is_some_and(|cl| cl.resource.is_some());
                let existed = self
                    .view
                    .latest(&c.type_, &c.id)
                    .is_some_and(|v| v.resource.is_some());
                (c, publish, existed)
            })
            .collect())
    }

    fn check_ownership(
        &self,
        t: &Tenant,
        type_: &str,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), Outcome> {
        if fhir_search::params_of(type_).is_none() {
            return Err(Outcome::new(
                404,
                "not-supported",
                format!(
                    "{type_} is not a directory resource here (served: {})",
                    fhir_search::TYPES.join(", ")
                ),
            ));
        }
        if !is_fhir_id(id) {
            return Err(Outcome::invalid(format!("{id} is not a FHIR id")));
        }
        let latest = self.view.latest(type_, id);
        if let Some(v) = &latest {
            if v.resource.is_some() && v.owner != t.did {
                return Err(Outcome::new(
                    409,
                    "conflict",
                    format!("{type_}/{id} belongs to another organisation"),
                ));
            }
        }
        if let Some(m) = if_match {
            let current = latest
                .filter(|v| v.resource.is_some())
                .map(|v| crate::directory::mcsd::etag(v.vid));
            let wanted = if m.starts_with("W/") {
                m.to_owned()
            } else {
                format!("W/{m}")
            };
            if current.as_deref() != Some(wanted.as_str()) {
                return Err(Outcome::new(
                    412,
                    "conflict",
                    format!(
                        "If-Match {m} does not match the current version ({})",
                        current.unwrap_or_else(|| "none".into())
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An organisation has one top-level Organization (one with its URA identifier).
    fn check_one_top_level(&self, t: &Tenant, changes: &[Change]) -> Result<(), Outcome> {
        let tops: Vec<&str> = changes
            .iter()
            .filter(|c| c.type_ == "Organization")
            .filter(|c| c.resource.as_ref().and_then(published::ura).is_some())
            .map(|c| c.id.as_str())
            .collect();
        let current = self.view.organization_id(&t.did);
        let derived = crate::directory::ids::fhir_id(&t.did);
        let replaced = changes
            .iter()
            .any(|c| c.type_ == "Organization" && c.id == current && c.resource.is_none());
        let other = tops
            .iter()
            .find(|id| **id != current && ((current != derived && !replaced) || tops.len() > 1));
        match other {
            Some(id) => Err(Outcome::new(
                422,
                "business-rule",
                format!(
                    "Organization/{id} would be a second top-level Organization (with this \
                     organisation's URA); the top-level one is Organization/{current}"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Every relative link to a directory resource points at one of the tenant's own: in the
    /// view, or written by the same request (and not deleted by it).
    fn check_links(&self, t: &Tenant, changes: &[Change]) -> Result<(), Outcome> {
        let written: BTreeSet<(String, String)> = changes
            .iter()
            .filter(|c| c.resource.is_some())
            .map(|c| (c.type_.clone(), c.id.clone()))
            .collect();
        let deleted: BTreeSet<(String, String)> = changes
            .iter()
            .filter(|c| c.resource.is_none())
            .map(|c| (c.type_.clone(), c.id.clone()))
            .collect();
        for c in changes {
            let Some(r) = &c.resource else { continue };
            for (lt, li) in published::links(&c.type_, r) {
                let key = (lt.clone(), li.clone());
                let own = written.contains(&key)
                    || (!deleted.contains(&key)
                        && self.view.owner_of(&lt, &li).as_deref() == Some(t.did.as_str()));
                if !own {
                    return Err(Outcome::new(
                        422,
                        "business-rule",
                        format!(
                            "{}/{} links to {lt}/{li}, which is not one of this organisation's resources",
                            c.type_, c.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The profile and authority checks of one resource written by `t`.
fn check_for(t: &Tenant, type_: &str, id: &str, r: &Value) -> Result<(), Outcome> {
    if r["resourceType"] != type_ {
        return Err(Outcome::invalid(format!(
            "the resource is a {}, not a {type_}",
            r["resourceType"].as_str().unwrap_or("(none)")
        )));
    }
    published::check_resource(type_, id, r).map_err(|e| Outcome::new(422, "processing", e))?;
    if type_ != "Endpoint" && published::assigner(r) != Some(t.ura.as_str()) {
        return Err(Outcome::new(
            422,
            "business-rule",
            format!("the author-assigned identifier's assigner must be this organisation ({URA_SYSTEM}|{})", t.ura),
        ));
    }
    if published::ura(r).is_some_and(|u| u != t.ura) {
        return Err(Outcome::new(
            422,
            "business-rule",
            format!(
                "an Organization here has this organisation's URA ({}) or none",
                t.ura
            ),
        ));
    }
    Ok(())
}

/// A new resource id: a random UUID (version 4, RFC 9562 §5.4).
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The requests of a FHIR `transaction` Bundle (R4 §3.1.0.11): `POST`, `PUT` and `DELETE`
/// entries on directory resources; conditional requests are not supported.
pub fn transaction_requests(b: &Value) -> Result<Vec<Request>, Outcome> {
    if b["resourceType"] != "Bundle" {
        return Err(Outcome::invalid("a transaction is a Bundle"));
    }
    if b["type"] != "transaction" {
        return Err(Outcome::invalid(
            "only Bundle.type transaction is processed here (all entries or none)",
        ));
    }
    let entries = b["entry"].as_array().cloned().unwrap_or_default();
    if entries.len() > MAX_ENTRIES {
        return Err(Outcome::new(
            413,
            "too-costly",
            format!("at most {MAX_ENTRIES} entries per transaction"),
        ));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let method = e["request"]["method"].as_str().unwrap_or_default();
            let url = e["request"]["url"].as_str().unwrap_or_default();
            if url.contains('?') || e["request"].get("ifNoneExist").is_some() {
                return Err(Outcome::invalid(format!(
                    "entry {i}: conditional requests are not supported"
                )));
            }
            let resource = e.get("resource").cloned();
            let full_url = e["fullUrl"].as_str().map(str::to_owned);
            match (method, url.split_once('/'), resource) {
                ("POST", None, Some(resource)) => Ok(Request::Create {
                    type_: url.to_owned(),
                    resource,
                    full_url,
                }),
                ("PUT", Some((t, id)), Some(resource)) => Ok(Request::Update {
                    type_: t.to_owned(),
                    id: id.to_owned(),
                    resource,
                    if_match: e["request"]["ifMatch"].as_str().map(str::to_owned),
                }),
                ("DELETE", Some((t, id)), None) => Ok(Request::Delete {
                    type_: t.to_owned(),
                    id: id.to_owned(),
                }),
                _ => Err(Outcome::invalid(format!(
                    "entry {i}: {method} {url} is not a create (POST [type] with a resource), \
                     update (PUT [type]/[id] with a resource) or delete (DELETE [type]/[id])"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(is_fhir_id(&id));
        assert_ne!(id, new_id());
    }

    #[test]
    fn transaction_references_to_created_entries_are_rewritten() {
        let mut r = json!({"providedBy": {"reference": "urn:uuid:1"},
                           "location": [{"reference": "Location/x"}]});
        let renames = BTreeMap::from([("urn:uuid:1".to_owned(), "Organization/o".to_owned())]);
        map_references(&mut r, &mut |x| renames.get(x).cloned());
        assert_eq!(r["providedBy"]["reference"], "Organization/o");
        assert_eq!(r["location"][0]["reference"], "Location/x");
    }

    #[test]
    fn transactions_are_read_strictly() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Location"},
             "request": {"method": "POST", "url": "Location"}},
            {"resource": {"resourceType": "Location", "id": "a"},
             "request": {"method": "PUT", "url": "Location/a", "ifMatch": "W/\"2\""}},
            {"request": {"method": "DELETE", "url": "Endpoint/e"}}]});
        let r = transaction_requests(&b).unwrap();
        assert!(matches!(&r[0], Request::Create { full_url: Some(u), .. } if u == "urn:uuid:1"));
        assert!(matches!(&r[1], Request::Update { if_match: Some(m), .. } if m == "W/\"2\""));
        assert!(matches!(&r[2], Request::Delete { id, .. } if id == "e"));
        let mut batch = b.clone();
        batch["type"] = json!("batch");
        assert!(transaction_requests(&batch).is_err());
        let cond = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Location?identifier=x"}}]});
        assert!(transaction_requests(&cond).is_err());
    }
}
