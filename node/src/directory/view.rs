//! The node's directory as versioned FHIR resources (spec: `specs/mcsd.md` §4): what the
//! organisations derive from their credentials and DID documents and what they published,
//! under the authority rules, materialised with a version history that this node keeps (FHIR
//! `_history`: every create, update and delete it saw, with the time it saw it). The history is
//! kept in the store, so an update client reading `_history?_since` after a restart misses
//! nothing, deletes included.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::directory::bridge::Bridged;
use crate::directory::derived;
use crate::directory::external::External;
use crate::directory::ids::fhir_id;
use crate::directory::published::{self, Claims, Published};
use crate::directory::Directory;
use crate::identity::credentials::{DirectoryEntry, Query};
use crate::store::NodeStore;

/// Key prefix of the history in the store's node-local family.
const HISTORY_PREFIX: &[u8] = b"mv/";

/// One version of one resource.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    /// Position in this node's history (1-based, dense).
    pub seq: u64,
    #[serde(rename = "type")]
    pub type_: String,
    pub id: String,
    /// The resource's version number (1 for its first version here).
    pub vid: u64,
    /// When this node made the version, Unix milliseconds (`meta.lastUpdated`).
    pub at_ms: u64,
    /// The DID of the organisation the resource belongs to.
    pub owner: String,
    /// The resource with its `meta`, or `None` for a delete.
    pub resource: Option<Value>,
}

impl Version {
    /// `"201 Created"`, `"200 OK"` or `"204 No Content"` and the method that made it.
    pub fn interaction(&self) -> (&'static str, &'static str) {
        match (&self.resource, self.vid) {
            (None, _) => ("DELETE", "204 No Content"),
            (Some(_), 1) => ("POST", "201 Created"),
            (Some(_), _) => ("PUT", "200 OK"),
        }
    }
}

#[derive(Default)]
struct State {
    versions: Vec<Version>,
    /// `(type, id)` → index of its latest version in `versions`.
    latest: BTreeMap<(String, String), usize>,
}

/// A resource the directory should now serve, and whose it is.
struct Target {
    owner: String,
    resource: Value,
}

/// The materialised directory.
pub struct DirectoryView {
    directory: Arc<Directory>,
    published: Arc<Published>,
    external: Arc<External>,
    bridged: Arc<Bridged>,
    store: Arc<dyn NodeStore>,
    state: RwLock<State>,
    refreshing: Mutex<()>,
}

impl DirectoryView {
    /// The view, with the history this node kept.
    pub fn open(
        directory: Arc<Directory>,
        published: Arc<Published>,
        external: Arc<External>,
        bridged: Arc<Bridged>,
        store: Arc<dyn NodeStore>,
    ) -> Self {
        let mut state = State::default();
        match store.scan_private(HISTORY_PREFIX) {
            Ok(rows) => {
                for (_, v) in rows {
                    match serde_json::from_slice::<Version>(&v) {
                        Ok(v) => {
                            state
                                .latest
                                .insert((v.type_.clone(), v.id.clone()), state.versions.len());
                            state.versions.push(v);
                        }
                        Err(e) => tracing::warn!(error = %e, "directory history record unreadable"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "directory history unreadable; starting anew"),
        }
        DirectoryView {
            directory,
            published,
            external,
            bridged,
            store,
            state: RwLock::new(state),
            refreshing: Mutex::new(()),
        }
    }

    /// Reads new changes from the log and brings the view up to date with the directory,
    /// recording a version for every resource created, changed or deleted.
    pub fn refresh(&self) {
        let Ok(_one) = self.refreshing.lock() else {
            return;
        };
        self.published.catch_up();
        self.bridged.catch_up();
        let target = self.target();
        let now = now_ms();
        let mut new = Vec::new();
        {
            let Ok(st) = self.state.read() else {
                return;
            };
            let mut seq = st.versions.len() as u64;
            let mut push = |type_: &str, id: &str, vid: u64, owner: &str, r: Option<Value>| {
                seq += 1;
                let resource = r.map(|mut r| {
                    // The source's meta (source, tags, profiles) stays; the version is ours.
                    let mut meta = r["meta"].as_object().cloned().unwrap_or_default();
                    meta.insert("versionId".into(), json!(vid.to_string()));
                    meta.insert(
                        "lastUpdated".into(),
                        json!(knoop_did::knoop::time::to_rfc3339_ms(now)),
                    );
                    r["meta"] = Value::Object(meta);
                    r
                });
                new.push(Version {
                    seq,
                    type_: type_.to_owned(),
                    id: id.to_owned(),
                    vid,
                    at_ms: now,
                    owner: owner.to_owned(),
                    resource,
                });
            };
            for ((type_, id), t) in &target {
                let last = st
                    .latest
                    .get(&(type_.clone(), id.clone()))
                    .map(|i| &st.versions[*i]);
                let same = last.is_some_and(|v| {
                    v.owner == t.owner
                        && v.resource
                            .as_ref()
                            .is_some_and(|r| without_version(r) == t.resource)
                });
                if !same {
                    let vid = last.map_or(1, |v| v.vid + 1);
                    push(type_, id, vid, &t.owner, Some(t.resource.clone()));
                }
            }
            for ((type_, id), i) in &st.latest {
                let v = &st.versions[*i];
                if v.resource.is_some() && !target.contains_key(&(type_.clone(), id.clone())) {
                    push(type_, id, v.vid + 1, &v.owner.clone(), None);
                }
            }
        }
        if new.is_empty() {
            return;
        }
        let rows: Vec<(Vec<u8>, Vec<u8>)> = new
            .iter()
            .filter_map(|v| {
                let mut k = HISTORY_PREFIX.to_vec();
                k.extend_from_slice(&v.seq.to_be_bytes());
                serde_json::to_vec(v).ok().map(|b| (k, b))
            })
            .collect();
        if let Err(e) = self.store.put_private_many(&rows) {
            // Not applied either, so memory and disk agree; the next round tries again.
            tracing::warn!(error = %e, "directory history not stored; retried next round");
            return;
        }
        tracing::debug!(versions = new.len(), "directory view updated");
        if let Ok(mut st) = self.state.write() {
            for v in new {
                let at = st.versions.len();
                st.latest.insert((v.type_.clone(), v.id.clone()), at);
                st.versions.push(v);
            }
        }
    }

    /// What the directory should serve now (`specs/mcsd.md` §5.3): the derived resources of
    /// every organisation in the directory, and the resources organisations published, where
    /// the authority rules allow.
    fn target(&self) -> BTreeMap<(String, String), Target> {
        let entries = self.directory.entries(&Query::default());
        let claims = self.published.snapshot();
        let by_did: HashMap<&str, &DirectoryEntry> =
            entries.iter().map(|e| (e.did.as_str(), e)).collect();
        let mut out = BTreeMap::new();
        let live = live_claims(&claims, &by_did);
        // The top-level Organization each organisation published, if any.
        let mut top: HashMap<&str, (&str, &Value)> = HashMap::new();
        for ((type_, id), (owner, r)) in &live {
            if type_ == "Organization" && published::ura(r).is_some() {
                match top.get(owner.as_str()) {
                    Some((other, _)) if *other <= id.as_str() => {
                        tracing::warn!(owner, id, "a second top-level Organization ignored")
                    }
                    _ => {
                        top.insert(owner.as_str(), (id.as_str(), r));
                    }
                }
            }
        }
        for e in &entries {
            let published_top = top.get(e.did.as_str());
            let address = derived::fhir_address(&self.directory, e);
            let org = derived::organization(e, address.as_deref(), published_top.map(|(_, r)| *r));
            let org_id = org["id"].as_str().unwrap_or_default().to_owned();
            if let Some(a) = &address {
                let ep = derived::endpoint(e, a, &org_id);
                out.insert(
                    ("Endpoint".to_owned(), derived::endpoint_id(&e.did)),
                    Target {
                        owner: e.did.clone(),
                        resource: ep,
                    },
                );
            }
            out.insert(
                ("Organization".to_owned(), org_id),
                Target {
                    owner: e.did.clone(),
                    resource: org,
                },
            );
        }
        // Ids derived from a DID belong to that DID: nobody else's claim takes them over.
        let derived_owner: HashMap<(String, String), String> = out
            .iter()
            .map(|(k, t)| (k.clone(), t.owner.clone()))
            .collect();
        for ((type_, id), (owner, r)) in &live {
            let key = (type_.clone(), id.clone());
            if type_ == "Organization" && published::ura(r).is_some() {
                continue; // merged above, or a second top-level one
            }
            match derived_owner.get(&key) {
                Some(o) if o != owner => {
                    tracing::warn!(
                        type_,
                        id,
                        owner,
                        "a claim on another organisation's id ignored"
                    );
                    continue;
                }
                _ => {}
            }
            let foreign = published::links(type_, r).into_iter().find(|target| {
                let derived = derived_owner.get(target).is_some_and(|o| o != owner);
                let claimed = live.get(target).is_some_and(|(o, _)| o != owner);
                derived || claimed
            });
            if let Some((t, i)) = foreign {
                tracing::warn!(type_, id, owner, link = %format!("{t}/{i}"),
                               "a resource linking to another organisation's resource ignored");
                continue;
            }
            out.insert(
                key,
                Target {
                    owner: owner.clone(),
                    resource: r.clone(),
                },
            );
        }
        // What this node's update client and the trusted bridges learned from external
        // directories, unverified, for the organisations not on the network themselves (§6.3).
        let on_network: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.ura.as_str()).collect();
        let learned = self
            .external
            .all()
            .into_iter()
            .map(|(k, x)| (k, x, "external"));
        let bridged = self
            .bridged
            .resources(None)
            .into_iter()
            .map(|(k, x)| (k, x, "bridge"));
        for (key, x, via) in learned.chain(bridged) {
            if on_network.contains(x.ura.as_str()) || out.contains_key(&key) {
                continue;
            }
            out.insert(
                key,
                Target {
                    owner: format!("{via}:{}", x.source),
                    resource: x.resource,
                },
            );
        }
        out
    }

    /// The latest version of each resource of `type_` that exists now (of `owner` only, if
    /// given).
    pub fn current(&self, type_: &str, owner: Option<&str>) -> Vec<Version> {
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        st.latest
            .range((type_.to_owned(), String::new())..)
            .take_while(|((t, _), _)| t == type_)
            .map(|(_, i)| &st.versions[*i])
            .filter(|v| v.resource.is_some() && owner.is_none_or(|o| v.owner == o))
            .cloned()
            .collect()
    }

    /// The latest version of one resource (a delete included).
    pub fn latest(&self, type_: &str, id: &str) -> Option<Version> {
        let st = self.state.read().ok()?;
        st.latest
            .get(&(type_.to_owned(), id.to_owned()))
            .map(|i| st.versions[*i].clone())
    }

    /// Every version, newest first, that passes `keep`.
    pub fn history(&self, keep: impl Fn(&Version) -> bool) -> Vec<Version> {
        let Ok(st) = self.state.read() else {
            return Vec::new();
        };
        st.versions
            .iter()
            .rev()
            .filter(|v| keep(v))
            .cloned()
            .collect()
    }

    /// The organisation a live resource belongs to, as the view sees it.
    pub fn owner_of(&self, type_: &str, id: &str) -> Option<String> {
        self.latest(type_, id)
            .filter(|v| v.resource.is_some())
            .map(|v| v.owner)
    }

    /// The FHIR id of `did`'s top-level Organization.
    pub fn organization_id(&self, did: &str) -> String {
        self.current("Organization", Some(did))
            .into_iter()
            .find(|v| {
                v.resource
                    .as_ref()
                    .is_some_and(|r| published::ura(r).is_some())
            })
            .map(|v| v.id)
            .unwrap_or_else(|| fhir_id(did))
    }
}

/// The live published resources of organisations in the directory, whose assigner is the
/// organisation itself; a resource two organisations claim is served for neither
/// (`specs/mcsd.md` §5.3: withholding is safer than letting one take over the other's).
fn live_claims(
    claims: &Claims,
    by_did: &HashMap<&str, &DirectoryEntry>,
) -> BTreeMap<(String, String), (String, Value)> {
    let mut out = BTreeMap::new();
    for (key, owners) in claims {
        let live: Vec<(&String, &Value)> = owners
            .iter()
            .filter_map(|(o, c)| c.resource.as_ref().map(|r| (o, r)))
            .collect();
        let [(owner, r)] = live.as_slice() else {
            if live.len() > 1 {
                tracing::warn!(type_ = %key.0, id = %key.1, "resource claimed by several organisations withheld");
            }
            continue;
        };
        let Some(e) = by_did.get(owner.as_str()) else {
            continue; // not (or no longer) a trusted organisation
        };
        let assigned = key.0 == "Endpoint" || published::assigner(r) == Some(e.ura.as_str());
        let ura_ok = published::ura(r).is_none_or(|u| u == e.ura);
        if !assigned || !ura_ok {
            tracing::warn!(type_ = %key.0, id = %key.1, owner = %owner,
                           "resource with another organisation's URA ignored");
            continue;
        }
        out.insert(key.clone(), ((*owner).clone(), (*r).clone()));
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `r` without the version the view gave it (and without `meta` when nothing else is in it).
fn without_version(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(m) = r["meta"].as_object_mut() {
        m.remove("versionId");
        m.remove("lastUpdated");
        if m.is_empty() {
            if let Some(o) = r.as_object_mut() {
                o.remove("meta");
            }
        }
    }
    r
}
