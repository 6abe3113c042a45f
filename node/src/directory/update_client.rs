//! The mCSD Update Client (spec: `specs/mcsd.md` §6): reads external Administration
//! Directories (a root such as the LRZa, and the directories its organisations registered)
//! through `_history` with `_since`, applies the national guide's authority rules, and hands
//! what it may use to the view as unverified resources. `POST /mcsd/update` runs a round and
//! answers knooppunt's report per directory; rounds also run on an interval. Each directory's
//! state (its resources and `_since`) is kept in the store, so a restart reloads nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;
use tracing::Instrument;

use crate::config::McsdConfig;
use crate::directory::bridge::{self, Bridged};
use crate::directory::external::{External, ExternalResource};
use crate::directory::fhir_search::{self, TYPES};
use crate::directory::ids::FHIR_JSON;
use crate::directory::published;
use crate::directory::r4::{drop_empty, map_references, r4_required};
use crate::identity::did_ops::DidOps;
use crate::store::NodeStore;

/// The code system of the guide's data exchange capabilities (`Endpoint.payloadType`).
pub const CAPABILITIES_SYSTEM: &str =
    "http://nuts-foundation.github.io/nl-generic-functions-ig/CodeSystem/nl-gf-data-exchange-capabilities";
/// The capability of an Administration Directory for update clients.
pub const DIRECTORY_CAPABILITY: &str =
    "http://nuts-foundation.github.io/nl-generic-functions-ig/CapabilityStatement/nl-gf-admin-directory-update-client";
/// The tag an external resource carries: not backed by a trusted organisation credential.
pub const TRUST_SYSTEM: &str = "urn:knoop:directory-trust";

/// What a root directory is read for.
const ROOT_TYPES: [&str; 2] = ["Organization", "Endpoint"];
/// Entries per page asked, pages followed per type and round, entries kept per round.
const PAGE_SIZE: usize = 100;
const MAX_PAGES: usize = 100;
const MAX_ENTRIES: usize = 10_000;
/// Key prefix of the directories' state in the store's node-local family.
const STATE_PREFIX: &[u8] = b"mx/";
/// Subtracted from the local clock when a directory gives no time of its own.
const CLOCK_SKEW: Duration = Duration::from_secs(2);

/// What one round did with one directory (knooppunt's `POST /mcsd/update` report).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DirectoryReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// Directory key (`<base>` or `<base>|<URA>`) → its report.
pub type Report = BTreeMap<String, DirectoryReport>;

/// One external directory and what the node holds of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DirState {
    base: String,
    root: bool,
    /// The URA of the organisation that registered this directory (not for a root).
    ura: Option<String>,
    /// `_since` for the next round.
    since: Option<String>,
    /// `Type/id` → the directory's current resource.
    resources: BTreeMap<String, Value>,
}

impl DirState {
    fn key(&self) -> String {
        match &self.ura {
            Some(u) => format!("{}|{u}", self.base),
            None => self.base.clone(),
        }
    }
}

/// The update client.
/// Where a bridge publishes: the node's DIDs service, its DID, and the index that shows what
/// it published before.
pub struct BridgeOut {
    pub dids: Arc<DidOps>,
    pub did: String,
    pub bridged: Arc<Bridged>,
}

pub struct UpdateClient {
    bridge: Option<BridgeOut>,
    http: reqwest::Client,
    roots: Vec<String>,
    exclude: Vec<String>,
    store: Arc<dyn NodeStore>,
    external: Arc<External>,
    dirs: tokio::sync::Mutex<BTreeMap<String, DirState>>,
}

impl UpdateClient {
    /// The client, with the directories' state as last stored (already handed to `external`).
    pub fn open(
        http: reqwest::Client,
        cfg: &McsdConfig,
        store: Arc<dyn NodeStore>,
        external: Arc<External>,
        bridge: Option<BridgeOut>,
    ) -> Self {
        let mut dirs = BTreeMap::new();
        match store.scan_private(STATE_PREFIX) {
            Ok(rows) => {
                for (_, v) in rows {
                    if let Ok(d) = serde_json::from_slice::<DirState>(&v) {
                        dirs.insert(d.key(), d);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "mCSD update client state unreadable"),
        }
        let roots: Vec<String> = cfg.roots.iter().map(|r| trim(r)).collect();
        dirs.retain(|_, d: &mut DirState| !d.root || roots.contains(&d.base));
        for r in &roots {
            dirs.entry(r.clone()).or_insert_with(|| DirState {
                base: r.clone(),
                root: true,
                ura: None,
                since: None,
                resources: BTreeMap::new(),
            });
        }
        let mut client = UpdateClient {
            bridge,
            http,
            roots,
            exclude: cfg.exclude.iter().map(|e| trim(e)).collect(),
            store,
            external,
            dirs: tokio::sync::Mutex::new(BTreeMap::new()),
        };
        client.publish(&dirs, &mut Report::new());
        client.dirs = tokio::sync::Mutex::new(dirs);
        client
    }

    /// Has it anything to read?
    pub fn enabled(&self) -> bool {
        !self.roots.is_empty()
    }

    /// One round: every root, then every directory the roots list, each through `_history`.
    pub async fn update(&self) -> Report {
        let mut dirs = self.dirs.lock().await;
        let mut report = Report::new();
        let roots: Vec<String> = dirs
            .iter()
            .filter(|(_, d)| d.root)
            .map(|(k, _)| k.clone())
            .collect();
        for key in roots {
            if let Some(d) = dirs.get_mut(&key) {
                let r = self.round(d).await;
                report.insert(key, r);
            }
        }
        self.discover(&mut dirs, &mut report);
        let others: Vec<String> = dirs
            .iter()
            .filter(|(_, d)| !d.root)
            .map(|(k, _)| k.clone())
            .collect();
        for key in others {
            if let Some(d) = dirs.get_mut(&key) {
                let r = self.round(d).await;
                report.insert(key, r);
            }
        }
        self.publish(&dirs, &mut report);
        if let Some(b) = &self.bridge {
            report.insert(format!("bridge:{}", b.did), self.bridge_out(b).await);
        }
        let rows: Vec<(Vec<u8>, Vec<u8>)> = dirs
            .values()
            .filter_map(|d| {
                let mut k = STATE_PREFIX.to_vec();
                k.extend_from_slice(d.key().as_bytes());
                serde_json::to_vec(d).ok().map(|v| (k, v))
            })
            .collect();
        if let Err(e) = self.store.put_private_many(&rows) {
            tracing::warn!(error = %e, "mCSD update client state not stored; the next round reads again");
        }
        report
    }

    /// Publishes what differs between what this bridge published before (read back from the
    /// log) and what it learned now; the report counts the entries sent.
    async fn bridge_out(&self, b: &BridgeOut) -> DirectoryReport {
        let mut r = DirectoryReport::default();
        b.bridged.catch_up();
        let before = b.bridged.resources(Some(&b.did));
        let after = self.external.all();
        for change in bridge::changes(&before, &after) {
            let entries = bridge::parse(&change).unwrap_or_default();
            match b
                .dids
                .publish_as(&b.did, bridge::CONTENT_TYPE, change)
                .await
            {
                Ok(_) => {
                    for e in entries {
                        match (&e.resource, before.contains_key(&(e.type_, e.id))) {
                            (None, _) => r.deleted += 1,
                            (Some(_), true) => r.updated += 1,
                            (Some(_), false) => r.created += 1,
                        }
                    }
                }
                Err(e) => r.errors.push(format!("not published to the network: {e}")),
            }
        }
        r
    }

    /// Registers the directories the roots' organisations list (an `Endpoint` with the
    /// directory capability and an `https://` address), and forgets those no longer listed.
    fn discover(&self, dirs: &mut BTreeMap<String, DirState>, report: &mut Report) {
        let mut listed = BTreeSet::new();
        for root in dirs.values().filter(|d| d.root) {
            let warnings = &mut report.entry(root.key()).or_default().warnings;
            for (address, ura) in listed_directories(root, warnings) {
                if self.exclude.contains(&address) {
                    continue;
                }
                listed.insert((address, ura));
            }
        }
        for (address, ura) in &listed {
            let d = DirState {
                base: address.clone(),
                root: false,
                ura: Some(ura.clone()),
                since: None,
                resources: BTreeMap::new(),
            };
            dirs.entry(d.key()).or_insert(d);
        }
        let gone: Vec<String> = dirs
            .iter()
            .filter(|(_, d)| {
                !d.root && !listed.contains(&(d.base.clone(), d.ura.clone().unwrap_or_default()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            tracing::info!(directory = %k, "mCSD directory no longer listed by a root; forgotten");
            dirs.remove(&k);
            self.external.replace(&k, BTreeMap::new());
            let mut key = STATE_PREFIX.to_vec();
            key.extend_from_slice(k.as_bytes());
            let _ = self.store.delete_private(&[key]);
        }
    }

    /// Hands every directory's authoritative resources to the view, counting what this
    /// changes in the Query Directory as created, updated and deleted (knooppunt's report).
    fn publish(&self, dirs: &BTreeMap<String, DirState>, report: &mut Report) {
        let names: HashMap<String, String> = dirs
            .values()
            .filter(|d| d.root)
            .flat_map(|d| d.resources.values())
            .filter(|r| r["resourceType"] == "Organization")
            .filter_map(|r| {
                Some((
                    published::ura(r)?.to_owned(),
                    r["name"].as_str()?.to_owned(),
                ))
            })
            .collect();
        // URAs whose own directory gave their top-level Organization: the root's stands back.
        let mut covered = BTreeSet::new();
        let mut shares = Vec::new();
        for d in dirs.values().filter(|d| !d.root) {
            let mut warnings = Vec::new();
            let share = authoritative(d, &names, &mut warnings);
            if share.keys().any(|(t, id)| {
                t == "Organization" && *id == ura_id(d.ura.as_deref().unwrap_or_default())
            }) {
                covered.insert(d.ura.clone().unwrap_or_default());
            }
            report.entry(d.key()).or_default().warnings.extend(warnings);
            shares.push((d.key(), share));
        }
        for d in dirs.values().filter(|d| d.root) {
            let mut warnings = Vec::new();
            let mut share = authoritative(d, &names, &mut warnings);
            share.retain(|_, r| {
                !covered.contains(&r.ura) || r.resource["resourceType"] != "Organization"
            });
            report.entry(d.key()).or_default().warnings.extend(warnings);
            shares.push((d.key(), share));
        }
        for (k, share) in shares {
            let before = self.external.share(&k);
            let r = report.entry(k.clone()).or_default();
            for (key, x) in &share {
                match before.get(key) {
                    None => r.created += 1,
                    Some(old) if old.resource != x.resource => r.updated += 1,
                    Some(_) => {}
                }
            }
            r.deleted += before.keys().filter(|k| !share.contains_key(*k)).count();
            self.external.replace(&k, share);
        }
    }

    /// Reads one directory's changes and applies them to its state.
    async fn round(&self, d: &mut DirState) -> DirectoryReport {
        let span = tracing::info_span!("mcsd_update", directory = %d.key());
        self.read_and_apply(d).instrument(span).await
    }

    async fn read_and_apply(&self, d: &mut DirState) -> DirectoryReport {
        let mut report = DirectoryReport::default();
        let started = std::time::SystemTime::now();
        let types: &[&str] = if d.root { &ROOT_TYPES } else { &TYPES };
        let mut entries = Vec::new();
        let mut directory_time = None;
        for t in types {
            match self
                .history(&d.base, t, d.since.as_deref(), &mut report.warnings)
                .await
            {
                Ok((e, time)) => {
                    entries.extend(e.into_iter().map(|e| ((*t).to_owned(), e)));
                    directory_time = directory_time.or(time);
                }
                Err(e) => {
                    report.errors.push(format!("{t}/_history: {e}"));
                    return report; // nothing applied; the same _since next round
                }
            }
        }
        apply(d, entries, &mut report);
        d.since = Some(directory_time.unwrap_or_else(|| {
            let t = started.checked_sub(CLOCK_SKEW).unwrap_or(started);
            knoop_did::knoop::time::to_rfc3339_ms(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            )
        }));
        report
    }

    /// Every entry of `[base]/[type]/_history` (with `_since`), following `next` links on the
    /// same origin; and the first page's `meta.lastUpdated`.
    async fn history(
        &self,
        base: &str,
        type_: &str,
        since: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<Value>, Option<String>), String> {
        let mut url = url::Url::parse(&format!("{base}/{type_}/_history"))
            .map_err(|e| format!("bad URL: {e}"))?;
        url.query_pairs_mut()
            .append_pair("_count", &PAGE_SIZE.to_string());
        if let Some(s) = since {
            url.query_pairs_mut().append_pair("_since", s);
        }
        let origin = url.origin();
        let mut entries = Vec::new();
        let mut time = None;
        for page in 0..MAX_PAGES {
            let resp = self
                .http
                .get(url.clone())
                .header(reqwest::header::ACCEPT, FHIR_JSON)
                .timeout(Duration::from_secs(15))
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: HTTP {}", resp.status()));
            }
            let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            let b: Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
            if b["resourceType"] != "Bundle" {
                return Err(format!("GET {url}: not a Bundle"));
            }
            if page == 0 {
                time = b["meta"]["lastUpdated"].as_str().map(str::to_owned);
            }
            entries.extend(b["entry"].as_array().cloned().unwrap_or_default());
            if entries.len() > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries in one round"));
            }
            let next = b["link"].as_array().and_then(|l| {
                l.iter()
                    .find(|l| l["relation"] == "next")
                    .and_then(|l| l["url"].as_str())
            });
            match next.map(url::Url::parse) {
                None => return Ok((entries, time)),
                Some(Ok(n)) if n.origin() == origin => url = n,
                Some(_) => {
                    warnings.push(format!(
                        "{type_}/_history: a next link off {base} is not followed"
                    ));
                    return Ok((entries, time));
                }
            }
        }
        warnings.push(format!("{type_}/_history: stopped after {MAX_PAGES} pages"));
        Ok((entries, time))
    }
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// The node-given id of the top-level Organization of `ura`, whichever directory names it.
pub fn ura_id(ura: &str) -> String {
    format!(
        "x{}",
        hex::encode(&sha2::Sha256::digest(format!("ura|{ura}"))[..16])
    )
}

/// The node-given id of resource `type_/id` of the directory at `base`.
fn mapped_id(base: &str, type_: &str, id: &str) -> String {
    format!(
        "x{}",
        hex::encode(&sha2::Sha256::digest(format!("{base}|{type_}/{id}"))[..16])
    )
}

/// Applies history `entries` (`(type, entry)`) to `d`: per resource the latest entry (by
/// `meta.lastUpdated`, a delete by `response.lastModified`, else by position).
fn apply(d: &mut DirState, entries: Vec<(String, Value)>, report: &mut DirectoryReport) {
    let mut latest: BTreeMap<String, (String, usize, Value)> = BTreeMap::new();
    for (i, (type_, e)) in entries.into_iter().enumerate() {
        let method = e["request"]["method"].as_str().unwrap_or_default();
        let r = e.get("resource");
        let id = match (
            r.and_then(|r| r["id"].as_str()),
            e["request"]["url"].as_str(),
        ) {
            (Some(id), _) => id.to_owned(),
            (None, Some(u)) => u.split('/').nth(1).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        if id.is_empty() {
            report
                .warnings
                .push(format!("{type_} entry #{i} names no resource id; skipped"));
            continue;
        }
        if let Some(r) = r {
            if r["resourceType"] != type_.as_str() {
                report.warnings.push(format!(
                    "{type_}/{id}: a {} in the {type_} history; skipped",
                    r["resourceType"]
                        .as_str()
                        .unwrap_or("resource without a type")
                ));
                continue;
            }
        } else if method != "DELETE" {
            report.warnings.push(format!(
                "{type_}/{id}: {method} without a resource; skipped"
            ));
            continue;
        }
        let time = r
            .and_then(|r| r["meta"]["lastUpdated"].as_str())
            .or_else(|| e["response"]["lastModified"].as_str())
            .unwrap_or("")
            .to_owned();
        let key = format!("{type_}/{id}");
        let newer = latest
            .get(&key)
            .is_none_or(|(t, _, _)| time >= *t || time.is_empty());
        if newer {
            latest.insert(key, (time, i, e));
        }
    }
    for (key, (_, _, e)) in latest {
        match e
            .get("resource")
            .filter(|_| e["request"]["method"] != "DELETE")
        {
            Some(r) => {
                d.resources.insert(key, r.clone());
            }
            None => {
                d.resources.remove(&key);
            }
        }
    }
}

/// The directories a root lists: `(address, URA of the organisation that registered it)`.
fn listed_directories(root: &DirState, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for org in root
        .resources
        .values()
        .filter(|r| r["resourceType"] == "Organization")
    {
        let Some(ura) = published::ura(org) else {
            continue;
        };
        for target in fhir_search::references(org, "Organization", "endpoint") {
            let Some(ep) = root.resources.get(&format!("Endpoint/{}", target.1)) else {
                continue;
            };
            let is_directory = ep["payloadType"].as_array().is_some_and(|p| {
                p.iter().any(|cc| {
                    cc["coding"].as_array().is_some_and(|c| {
                        c.iter().any(|c| {
                            c["system"] == CAPABILITIES_SYSTEM && c["code"] == DIRECTORY_CAPABILITY
                        })
                    })
                })
            });
            if !is_directory {
                continue;
            }
            let address = ep["address"].as_str().unwrap_or_default();
            match url::Url::parse(address) {
                Ok(u) if u.scheme() == "https" && u.has_host() => {
                    out.push((trim(address), ura.to_owned()))
                }
                _ => warnings.push(format!(
                    "Endpoint/{}: directory address {address:?} is not an https:// URL; not read",
                    target.1
                )),
            }
        }
    }
    out
}

/// What directory `d` is authoritative for (`specs/mcsd.md` §6.2), under node-given ids, with
/// the root's names for top-level organisations; a warning for everything else.
fn authoritative(
    d: &DirState,
    names: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> BTreeMap<(String, String), ExternalResource> {
    let of_type = |t: &'static str| {
        d.resources
            .iter()
            .filter(move |(k, _)| k.split('/').next() == Some(t))
            .map(|(k, r)| (k.split('/').nth(1).unwrap_or_default().to_owned(), r))
    };
    // Organizations: id → URA of the top-level one they belong to.
    let orgs: BTreeMap<String, &Value> = of_type("Organization").collect();
    let mut org_ura: BTreeMap<String, String> = BTreeMap::new();
    for (id, r) in &orgs {
        if let Some(u) = top_level_ura(id, &orgs) {
            match &d.ura {
                Some(own) if *own != u => warnings.push(format!(
                    "Organization/{id}: belongs to URA {u}, but this directory speaks only for URA {own}; ignored"
                )),
                _ => {
                    org_ura.insert(id.clone(), u);
                }
            }
        } else {
            let _ = r;
            warnings.push(format!(
                "Organization/{id}: neither a URA nor a partOf chain to one; ignored"
            ));
        }
    }
    let mut keep: BTreeMap<(String, String), String> = BTreeMap::new();
    for (id, u) in &org_ura {
        keep.insert(("Organization".into(), id.clone()), u.clone());
    }
    for (t, param) in [
        ("Location", "organization"),
        ("HealthcareService", "organization"),
        ("PractitionerRole", "organization"),
    ] {
        for (id, r) in of_type(t) {
            let owner = fhir_search::references(r, t, param)
                .into_iter()
                .find_map(|(_, oid)| org_ura.get(&oid).cloned());
            match owner {
                Some(u) => {
                    keep.insert((t.to_owned(), id), u);
                }
                None => warnings.push(format!(
                    "{t}/{id}: not linked to an organisation this directory speaks for; ignored"
                )),
            }
        }
    }
    // Endpoints: referred to by a kept resource, or managed by a kept organisation.
    let mut endpoint_ura: BTreeMap<String, String> = BTreeMap::new();
    for ((t, id), u) in &keep {
        if let Some(r) = d.resources.get(&format!("{t}/{id}")) {
            for (_, eid) in fhir_search::references(r, t, "endpoint") {
                endpoint_ura.insert(eid, u.clone());
            }
        }
    }
    for (id, r) in of_type("Endpoint") {
        let managed = fhir_search::references(r, "Endpoint", "organization")
            .into_iter()
            .find_map(|(_, oid)| org_ura.get(&oid).cloned());
        match endpoint_ura.get(&id).cloned().or(managed) {
            Some(u) => {
                keep.insert(("Endpoint".into(), id), u);
            }
            None => warnings.push(format!(
                "Endpoint/{id}: not used by an organisation this directory speaks for; ignored"
            )),
        }
    }
    // What FHIR R4 requires of a resource (an invalid one is not served, whoever sent it).
    keep.retain(|(t, id), _| {
        let Some(r) = d.resources.get(&format!("{t}/{id}")) else {
            return false;
        };
        match r4_required(t, r) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!("{t}/{id}: {e}; ignored"));
                false
            }
        }
    });
    // Node-given ids: a top-level Organization by its URA, the rest by source.
    let ids: HashMap<(String, String), String> = keep
        .keys()
        .map(|(t, id)| {
            let top = t == "Organization" && orgs.get(id).and_then(|r| published::ura(r)).is_some();
            let new = if top {
                ura_id(&keep[&(t.clone(), id.clone())])
            } else {
                mapped_id(&d.base, t, id)
            };
            ((t.clone(), id.clone()), new)
        })
        .collect();
    let mut out = BTreeMap::new();
    for ((t, id), u) in keep {
        let Some(r) = d.resources.get(&format!("{t}/{id}")) else {
            continue;
        };
        let mut r = r.clone();
        // Relative references (and absolute ones into the directory) to kept resources get
        // their node-given ids; references to what was not kept stay as they are.
        let prefix = format!("{}/", d.base);
        map_references(&mut r, &mut |s| {
            let (t, id) = s.strip_prefix(&prefix).unwrap_or(s).split_once('/')?;
            let new = ids.get(&(t.to_owned(), id.to_owned()))?;
            Some(format!("{t}/{new}"))
        });
        let new_id = ids[&(t.clone(), id.clone())].clone();
        r["id"] = json!(new_id);
        if t == "Organization" && published::ura(&r).is_some() {
            if let Some(root_name) = names.get(&u) {
                if let Some(own) = r["name"].as_str().filter(|n| n != root_name) {
                    let mut alias = r["alias"].as_array().cloned().unwrap_or_default();
                    alias.push(json!(own));
                    r["alias"] = json!(alias);
                }
                r["name"] = json!(root_name);
            }
        }
        r["meta"] = json!({
            "source": format!("{}/{t}/{id}", d.base),
            "tag": [{"system": TRUST_SYSTEM, "code": "unverified",
                     "display": "not backed by a trusted organisation credential"}],
        });
        if let Some(o) = r.as_object_mut() {
            o.remove("text"); // narrative of another server: not ours to vouch for
        }
        drop_empty(&mut r);
        out.insert(
            (t, new_id),
            ExternalResource {
                resource: r,
                source: d.key(),
                ura: u,
                rank: u8::from(!d.root),
            },
        );
    }
    out
}

/// The URA of the top-level Organization `id` is or belongs to (`partOf`, at most 10 deep).
fn top_level_ura(id: &str, orgs: &BTreeMap<String, &Value>) -> Option<String> {
    let mut cur = id.to_owned();
    for _ in 0..=10 {
        let r = orgs.get(&cur)?;
        if let Some(u) = published::ura(r) {
            return Some(u.to_owned());
        }
        cur = fhir_search::references(r, "Organization", "partof")
            .into_iter()
            .next()?
            .1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ids::URA_SYSTEM;

    fn org(id: &str, ura: Option<&str>, part_of: Option<&str>) -> Value {
        let mut r = json!({"resourceType": "Organization", "id": id, "name": id});
        if let Some(u) = ura {
            r["identifier"] = json!([{"system": URA_SYSTEM, "value": u}]);
        }
        if let Some(p) = part_of {
            r["partOf"] = json!({"reference": format!("Organization/{p}")});
        }
        r
    }

    fn dir(ura: Option<&str>, resources: Vec<Value>) -> DirState {
        DirState {
            base: "https://d.example/fhir".into(),
            root: ura.is_none(),
            ura: ura.map(str::to_owned),
            since: None,
            resources: resources
                .into_iter()
                .map(|r| {
                    (
                        format!(
                            "{}/{}",
                            r["resourceType"].as_str().unwrap(),
                            r["id"].as_str().unwrap()
                        ),
                        r,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_directory_speaks_only_for_the_organisation_that_registered_it() {
        let d = dir(
            Some("111"),
            vec![
                org("top", Some("111"), None),
                org("dept", None, Some("top")),
                org("other", Some("222"), None),
                org("orphan", None, None),
                json!({"resourceType": "Location", "id": "l1",
                       "managingOrganization": {"reference": "Organization/dept"}}),
                json!({"resourceType": "Location", "id": "l2",
                       "managingOrganization": {"reference": "Organization/other"}}),
                json!({"resourceType": "Endpoint", "id": "e1", "address": "https://x",
                       "status": "active", "connectionType": {"code": "hl7-fhir-rest"},
                       "payloadType": [{"text": "any"}], "name": "",
                       "managingOrganization": {"reference": "Organization/top"}}),
                json!({"resourceType": "Endpoint", "id": "e2", "address": "https://y",
                       "managingOrganization": {"reference": "Organization/top"}}),
            ],
        );
        let names = HashMap::from([("111".to_owned(), "Root Name".to_owned())]);
        let mut warnings = Vec::new();
        let out = authoritative(&d, &names, &mut warnings);
        let kept: BTreeSet<&str> = out
            .values()
            .map(|r| r.resource["name"].as_str().unwrap_or("-"))
            .collect();
        assert!(kept.contains("Root Name"), "{kept:?}");
        assert!(kept.contains("dept"));
        assert!(!kept.contains("other") && !kept.contains("orphan"));
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("Endpoint/e2: Endpoint.status is required")));
        let top = &out[&("Organization".to_owned(), ura_id("111"))].resource;
        assert_eq!(top["alias"], json!(["top"]));
        assert_eq!(top["meta"]["tag"][0]["code"], "unverified");
        let l1 = out
            .values()
            .find(|r| r.resource["resourceType"] == "Location")
            .unwrap();
        let dept_id = mapped_id(&d.base, "Organization", "dept");
        assert_eq!(
            l1.resource["managingOrganization"]["reference"],
            format!("Organization/{dept_id}")
        );
        let eps: Vec<&Value> = out
            .values()
            .filter(|r| r.resource["resourceType"] == "Endpoint")
            .map(|r| &r.resource)
            .collect();
        assert_eq!(eps.len(), 1);
        assert!(
            eps[0].get("name").is_none(),
            "empty elements dropped: {}",
            eps[0]
        );
    }

    #[test]
    fn history_entries_apply_newest_first_with_deletes() {
        let mut d = dir(
            Some("111"),
            vec![org("a", Some("111"), None), org("b", Some("111"), None)],
        );
        let mut v2 = org("a", Some("111"), None);
        v2["name"] = json!("A2");
        v2["meta"] = json!({"lastUpdated": "2025-08-02T00:00:00Z"});
        let mut v1 = org("a", Some("111"), None);
        v1["meta"] = json!({"lastUpdated": "2025-08-01T00:00:00Z"});
        let entries = vec![
            (
                "Organization".to_owned(),
                json!({"resource": v1, "request": {"method": "POST", "url": "Organization/a"}}),
            ),
            (
                "Organization".to_owned(),
                json!({"resource": v2, "request": {"method": "PUT", "url": "Organization/a"}}),
            ),
            (
                "Organization".to_owned(),
                json!({"request": {"method": "DELETE", "url": "Organization/b"}}),
            ),
            (
                "Organization".to_owned(),
                json!({"resource": {"resourceType": "Something-else"}, "request": {"method": "POST", "url": "Organization/c"}}),
            ),
        ];
        let mut report = DirectoryReport::default();
        apply(&mut d, entries, &mut report);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert_eq!(d.resources["Organization/a"]["name"], "A2");
        assert!(!d.resources.contains_key("Organization/b"));
    }

    #[test]
    fn only_https_directories_are_listed() {
        let cap =
            json!([{"coding": [{"system": CAPABILITIES_SYSTEM, "code": DIRECTORY_CAPABILITY}]}]);
        let root = dir(
            None,
            vec![
                json!({"resourceType": "Organization", "id": "o1", "name": "O1",
                       "identifier": [{"system": URA_SYSTEM, "value": "111"}],
                       "endpoint": [{"reference": "Endpoint/d1"}, {"reference": "Endpoint/d2"}]}),
                json!({"resourceType": "Endpoint", "id": "d1", "payloadType": cap, "address": "https://dir1.example/fhir/"}),
                json!({"resourceType": "Endpoint", "id": "d2", "payloadType": cap, "address": "file:///etc/passwd"}),
            ],
        );
        let mut warnings = Vec::new();
        assert_eq!(
            listed_directories(&root, &mut warnings),
            vec![("https://dir1.example/fhir".to_owned(), "111".to_owned())]
        );
        assert_eq!(warnings.len(), 1);
    }
}
