//! Localisation on the node (spec: `specs/consent-localisation.md` §6, §7): registering "a
//! tenant of this node holds data of these categories about patient P", indexing every node's
//! encrypted entries, and looking a patient up: the local index gives the holder *nodes*, and
//! each holder node is asked over `/knoop/locate/1` which of its organisations share which
//! categories. The holder decides under the consent mode, rate-limits per requester, and logs
//! every request it answers.
//!
//! The patient identifier is only ever held in memory to derive the keys
//! ([`knoop_privacy::patient`]); what is stored is the pseudonym and sealed keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use knoop_did::binding::binding_in;
use knoop_did::knoop::services::HOST_SERVICE_TYPE;
use knoop_gossip::net::{AskClient, AskProtocol};
use knoop_gossip::wire::MISS;
use knoop_privacy::locator::{
    decode_content, encode_content, scan, seal_entry, EntryKind, ScanResult, StoredEntry,
    ENTRY_LEN, LOC_CONTENT_TYPE,
};
use knoop_privacy::patient::{NetworkParams, PatientId, PatientKeys};
use libp2p::{Multiaddr, PeerId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::care::private::signer_did;
use crate::identity::credentials::Credentials;
use crate::identity::did_ops::{DidOps, OpsError};
use crate::identity::did_state::DidState;
use crate::store::NodeStore;

mod batch;
mod holder;

use knoop_vc::types::{DATA_CATEGORIES as CATEGORIES, PURPOSES};
/// Locate requests per requester organisation: per second, and burst.
const REQUESTER_RATE: f64 = 1.0;
const REQUESTER_BURST: f64 = 30.0;
const LOC_SEEN_KEY: &[u8] = b"loc_seen";
/// Tries per holder node in one lookup.
const LOCATE_TRIES: u32 = 4;

/// Why a localisation call failed.
#[derive(Debug, thiserror::Error)]
pub enum LocError {
    #[error("localisation is not configured on this node (localisation.pepper)")]
    NotConfigured,
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not hosted here")]
    UnknownTenant(String),
    #[error("all 256 slots of this patient are taken")]
    SlotsExhausted,
    /// A blocking task (key derivation) did not finish.
    #[error("derivation")]
    Task,
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("store: {0}")]
    Store(String),
}

/// What this node records about a patient it holds data on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PatientRecord {
    /// Tenant DID → categories it holds.
    tenants: BTreeMap<String, Vec<String>>,
    /// This node's live `held` entry: (tx id hex, index).
    own: Option<(String, u32)>,
    /// Tenant DID → the patient's local id at its source system (`specs/data-fetch.md` §4).
    #[serde(default)]
    sources: BTreeMap<String, String>,
}

/// The locate query (spec §7).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocateRequest {
    #[serde(rename = "p")]
    patient: ByteBuf,
    #[serde(rename = "r")]
    requester: String,
    #[serde(rename = "u")]
    purpose: String,
    #[serde(rename = "w")]
    who: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Holding {
    #[serde(rename = "h")]
    holder: String,
    #[serde(rename = "c")]
    categories: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum LocateResponse {
    #[serde(rename = "l")]
    Holdings(Vec<Holding>),
    #[serde(rename = "x")]
    Refused(String),
}

/// One holder node's answer to a lookup.
#[derive(Clone, Debug, Serialize)]
pub struct HolderAnswer {
    pub node: String,
    /// `ok`, `no_permitted_data`, `not_here`, `unreachable` or `rate_limited`.
    pub status: String,
    pub holdings: Vec<(String, Vec<String>)>,
}

fn record_key(p: &[u8; 32]) -> Vec<u8> {
    [b"p/".as_slice(), p].concat()
}

fn key_id(p: &[u8; 32], which: &str) -> String {
    format!("patient/{}/{which}", hex::encode(p))
}

/// Indexes the localisation entries of the transactions stored after by-type position `after`
/// (spec §6.2: `loc` key `T || seq u64be || index u16be` → tx id, entry, signer DID), a page of
/// transactions at a time so memory stays bounded however far behind the index is. Returns the
/// last position indexed. `signer_of` names a transaction's signing node.
pub fn index_entries(
    store: &dyn NodeStore,
    after: u64,
    signer_of: &dyn Fn(&knoop_gossip::Transaction) -> String,
) -> Result<u64, String> {
    const PAGE: usize = 64;
    let mut last = after;
    loop {
        let ids = store
            .list_by_type(LOC_CONTENT_TYPE, last, PAGE)
            .map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Ok(last);
        }
        let mut batch = Vec::new();
        for (seq, id) in ids {
            last = seq;
            let Some((t, Some(payload))) = knoop_gossip::log::read_tx(store, &id).ok().flatten()
            else {
                continue;
            };
            let Ok(tx) = knoop_gossip::Transaction::parse(&t.envelope, None) else {
                continue;
            };
            let signer = signer_of(&tx);
            let Ok(entries) = decode_content(&payload) else {
                continue;
            };
            for (i, e) in entries.iter().enumerate() {
                let key = [&e[..16], &seq.to_be_bytes(), &(i as u16).to_be_bytes()].concat();
                let value = [&tx.id().0[..], &e[..], signer.as_bytes()].concat();
                batch.push((key, value));
            }
        }
        store.put_loc(&batch).map_err(|e| e.to_string())?;
    }
}

/// A patient's slots as the index holds them (spec §6.4).
pub fn scan_index(store: &dyn NodeStore, keys: &PatientKeys) -> ScanResult {
    let lookup = |tag: &[u8; 16]| -> Vec<StoredEntry> {
        store
            .scan_loc(tag)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let index = u16::from_be_bytes(k.get(24..26)?.try_into().ok()?);
                let tx: [u8; 32] = v.get(..32)?.try_into().ok()?;
                let entry: [u8; ENTRY_LEN] = v.get(32..32 + ENTRY_LEN)?.try_into().ok()?;
                let signer = String::from_utf8(v.get(32 + ENTRY_LEN..)?.to_vec()).ok()?;
                Some(StoredEntry {
                    tx,
                    index: u32::from(index),
                    signer,
                    entry,
                })
            })
            .collect()
    };
    scan(keys, &lookup)
}

/// Entries wait this long for others before their batch goes out (spec §6.2).
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_secs(2);

/// One async lock per patient, made when needed and dropped when nobody holds or awaits it.
#[derive(Default)]
struct PatientLocks(Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>);

impl PatientLocks {
    async fn lock(&self, p: &[u8; 32]) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(*p).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// The node's localisation state.
pub struct Localisation {
    ops: Arc<DidOps>,
    dids: Arc<DidState>,
    store: Arc<dyn NodeStore>,
    credentials: Arc<Credentials>,
    consents: Arc<crate::care::consent::Consents>,
    private: Arc<crate::care::private::Private>,
    audit: Arc<crate::care::audit::AuditLog>,
    node_did: String,
    params: Option<NetworkParams>,
    opt_out: bool,
    ask: OnceLock<AskClient>,
    seen: Mutex<u64>,
    buckets: crate::care::buckets::Buckets,
    /// Serialises what this node does for one patient, so two registrations for one patient
    /// do not both publish an entry; registrations for different patients go on side by side
    /// (and share batches).
    patient_locks: PatientLocks,
    /// The entry batcher (started on first use, on the node's runtime).
    batcher: OnceLock<batch::Batcher>,
    batch_interval: Duration,
}

impl Localisation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ops: Arc<DidOps>,
        dids: Arc<DidState>,
        store: Arc<dyn NodeStore>,
        credentials: Arc<Credentials>,
        consents: Arc<crate::care::consent::Consents>,
        private: Arc<crate::care::private::Private>,
        audit: Arc<crate::care::audit::AuditLog>,
        node_did: String,
        params: Option<NetworkParams>,
        opt_out: bool,
    ) -> Self {
        let seen = store
            .get_meta(LOC_SEEN_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Localisation {
            ops,
            dids,
            store,
            credentials,
            consents,
            private,
            audit,
            node_did,
            params,
            opt_out,
            ask: OnceLock::new(),
            seen: Mutex::new(seen),
            buckets: crate::care::buckets::Buckets::new(REQUESTER_RATE, REQUESTER_BURST),
            patient_locks: PatientLocks::default(),
            batcher: OnceLock::new(),
            batch_interval: DEFAULT_BATCH_INTERVAL,
        }
    }

    /// Batches entries for `interval` (spec §6.2; default 2 s).
    pub fn with_batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }

    fn batcher(&self) -> &batch::Batcher {
        self.batcher.get_or_init(|| {
            batch::Batcher::spawn(self.ops.clone(), self.node_did.clone(), self.batch_interval)
        })
    }

    pub fn attach(&self, ask: AskClient) {
        let _ = self.ask.set(ask);
    }

    /// Derives a patient's keys (slow by design: run it off the async workers).
    pub fn derive(&self, system: &str, value: &str) -> Result<PatientKeys, LocError> {
        let params = self.params.as_ref().ok_or(LocError::NotConfigured)?;
        let id = PatientId::new(system, value).map_err(|e| LocError::Invalid(e.to_string()))?;
        PatientKeys::derive(&id, params).map_err(|e| LocError::Invalid(e.to_string()))
    }

    /// [`Self::derive`] off the async workers (Argon2id: slow by design).
    pub async fn derive_blocking(
        self: &Arc<Self>,
        system: String,
        value: String,
    ) -> Result<PatientKeys, LocError> {
        let loc = self.clone();
        tokio::task::spawn_blocking(move || loc.derive(&system, &value))
            .await
            .map_err(|_| LocError::Task)?
    }

    /// Indexes localisation entries committed since the last call.
    pub fn catch_up(&self) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        match index_entries(self.store.as_ref(), *seen, &|tx| {
            signer_did(tx).unwrap_or_default()
        }) {
            Ok(last) => {
                *seen = last;
                let _ = self.store.put_meta(LOC_SEEN_KEY, &last.to_be_bytes());
            }
            Err(e) => warn!(error = %e, "indexing localisation entries failed; retried"),
        }
    }

    /// Reads a patient's slots from the index.
    fn scan(&self, keys: &PatientKeys) -> ScanResult {
        scan_index(self.store.as_ref(), keys)
    }

    fn record(&self, p: &[u8; 32]) -> Option<PatientRecord> {
        let v = self.store.get_private(&record_key(p)).ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// The keys of patient `p`, kept (sealed) since a tenant here registered data on them (spec
    /// §11): what withdrawing a registration known only by its pseudonym needs.
    pub fn stored_keys(&self, p: &[u8; 32]) -> Option<PatientKeys> {
        let get = |which: &str| {
            self.ops
                .keys
                .with_bytes(&key_id(p, which), |b| zeroize::Zeroizing::new(*b))
                .ok()
        };
        Some(PatientKeys {
            k_tag: get("tag")?,
            k_ent: get("ent")?,
            k_pat: get("pat")?,
            p: *p,
        })
    }

    /// Records that `holder` (a tenant here) holds data of `categories` about the patient, and
    /// publishes this node's entry if it has none yet.
    pub async fn register(
        &self,
        holder: &str,
        keys: &PatientKeys,
        categories: &[String],
        source_patient: Option<String>,
    ) -> Result<Option<String>, LocError> {
        check_categories(categories)?;
        if !self.ops.hosted()?.iter().any(|d| d == holder) {
            return Err(LocError::UnknownTenant(holder.to_owned()));
        }
        let _guard = self.patient_locks.lock(&keys.p).await;
        let mut rec = self.record(&keys.p).unwrap_or_default();
        if let Some(id) = source_patient {
            rec.sources.insert(holder.to_owned(), id);
        }
        let cats = rec.tenants.entry(holder.to_owned()).or_default();
        for c in categories {
            if !cats.contains(c) {
                cats.push(c.clone());
            }
        }
        // The patient's keys, kept once (one durable write) for the node's later work on
        // its own entries.
        let tag_id = key_id(&keys.p, "tag");
        if !self.ops.keys.contains(&tag_id).map_err(OpsError::from)? {
            let secrets = [
                (tag_id, &*keys.k_tag),
                (key_id(&keys.p, "ent"), &*keys.k_ent),
                (key_id(&keys.p, "pat"), &*keys.k_pat),
            ];
            self.ops
                .keys
                .put_bytes_many(&secrets)
                .map_err(OpsError::from)?;
        }
        let mut published = None;
        if rec.own.is_none() {
            let (id, index) = self.publish_entry(keys, &EntryKind::Held).await?;
            rec.own = Some((id.to_hex(), index));
            published = Some(id.to_hex());
            // Consents registered before this node held data on the patient: found through
            // their pointers, opened with the patient's key (spec §5.4).
            for tx in self.scan(keys).consents {
                match self
                    .private
                    .adopt_symmetric(&knoop_gossip::Hash32(tx), &keys.k_pat)
                {
                    Ok(true) => info!("an earlier consent record found for a new patient"),
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "a consent pointer could not be followed"),
                }
            }
        }
        let v = serde_json::to_vec(&rec).map_err(|e| LocError::Store(e.to_string()))?;
        self.store
            .put_private(&record_key(&keys.p), &v)
            .map_err(|e| LocError::Store(e.to_string()))?;
        Ok(published)
    }

    /// Records that `holder` no longer holds `categories` (all, if empty) about the patient;
    /// when no tenant here holds anything any more, withdraws this node's entry (spec §6.3).
    /// Returns the withdrawal's transaction, if one was published.
    pub async fn withdraw(
        &self,
        holder: &str,
        keys: &PatientKeys,
        categories: &[String],
    ) -> Result<Option<String>, LocError> {
        if !self.ops.hosted()?.iter().any(|d| d == holder) {
            return Err(LocError::UnknownTenant(holder.to_owned()));
        }
        let _guard = self.patient_locks.lock(&keys.p).await;
        let mut rec = self.record(&keys.p).unwrap_or_default();
        if let Some(cats) = rec.tenants.get_mut(holder) {
            cats.retain(|c| !categories.is_empty() && !categories.contains(c));
            if cats.is_empty() {
                rec.tenants.remove(holder);
                rec.sources.remove(holder);
            }
        }
        let mut published = None;
        if rec.tenants.is_empty() {
            if let Some((tx_hex, index)) = rec.own.take() {
                let tx = knoop_gossip::Hash32::from_hex(&tx_hex)
                    .map_err(|e| LocError::Store(e.to_string()))?;
                let (id, _) = self
                    .publish_entry(keys, &EntryKind::Withdrawn { tx: tx.0, index })
                    .await?;
                published = Some(id.to_hex());
            }
        }
        let v = serde_json::to_vec(&rec).map_err(|e| LocError::Store(e.to_string()))?;
        self.store
            .put_private(&record_key(&keys.p), &v)
            .map_err(|e| LocError::Store(e.to_string()))?;
        Ok(published)
    }

    /// Publishes one entry of `kind` in the patient's first free slot, in the next batch
    /// (spec §6.2): the batch's transaction and the entry's position in it, once committed.
    /// The caller holds the patient's lock, so the slot is still free when the batch commits.
    /// A consent pointer goes out at once, in a transaction of its own (spec §5.1).
    async fn publish_entry(
        &self,
        keys: &PatientKeys,
        kind: &EntryKind,
    ) -> Result<(knoop_gossip::TxId, u32), LocError> {
        self.catch_up();
        let slot = self.scan(keys).free_slot.ok_or(LocError::SlotsExhausted)?;
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let entry = seal_entry(keys, slot, &self.node_did, kind, &nonce);
        if matches!(kind, EntryKind::Consent { .. }) {
            let id = self
                .ops
                .publish_as(&self.node_did, LOC_CONTENT_TYPE, encode_content(&[entry]))
                .await?;
            debug!(tx = %id, slot, "consent pointer published");
            return Ok((id, 0));
        }
        let (id, index) = self.batcher().publish(entry).await.map_err(|e| {
            if e == batch::STOPPED {
                LocError::Ops(OpsError::Stopped)
            } else {
                LocError::Store(e)
            }
        })?;
        debug!(tx = %id, slot, index, "localisation entry published");
        Ok((id, index))
    }

    /// Publishes a pointer to private transaction `tx` about the patient (a consent or its
    /// revocation), so holders that come later find it (spec §5.4).
    pub async fn point_to(
        &self,
        keys: &PatientKeys,
        tx: &knoop_gossip::TxId,
    ) -> Result<(), LocError> {
        let _guard = self.patient_locks.lock(&keys.p).await;
        self.publish_entry(keys, &EntryKind::Consent { tx: tx.0 })
            .await
            .map(|_| ())
    }

    /// Finds the holders of a patient: the holder nodes from the index, each asked which of its
    /// organisations share which categories with `requester` for `purpose`.
    pub async fn lookup(
        &self,
        requester: &str,
        keys: &PatientKeys,
        purpose: &str,
        who: &str,
    ) -> Result<Vec<HolderAnswer>, LocError> {
        if !PURPOSES.contains(&purpose) {
            return Err(LocError::Invalid(format!(
                "purpose must be one of {PURPOSES:?}"
            )));
        }
        if !self.ops.hosted()?.iter().any(|d| d == requester) {
            return Err(LocError::UnknownTenant(requester.to_owned()));
        }
        self.catch_up();
        let found = self.scan(keys);
        let request = LocateRequest {
            patient: ByteBuf::from(keys.p.to_vec()),
            requester: requester.to_owned(),
            purpose: purpose.to_owned(),
            who: who.chars().take(128).collect(),
        };
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).unwrap_or_default();
        let asks = found.holders.iter().map(|(node, _, _)| {
            let bytes = bytes.clone();
            async move {
                let answer = if *node == self.node_did {
                    Ok(self.decide("local", Some(self.node_did.clone()), &bytes))
                } else {
                    self.ask_node(node, AskProtocol::Locate, bytes).await
                };
                holder_answer(node, answer)
            }
        });
        Ok(futures::future::join_all(asks).await)
    }

    /// Sends `request` on `protocol` to holder node `node` (a DID), found through its peer
    /// binding. A node not yet connected may take a moment to be found through discovery: a
    /// few tries, 0.3 s apart.
    pub async fn ask_node(
        &self,
        node: &str,
        protocol: AskProtocol,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let (Some((peer, addrs)), Some(client)) = (self.peer_of(node), self.ask.get()) else {
            return Err("no address for this node".into());
        };
        let mut res = Err(String::new());
        for attempt in 0..LOCATE_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            res = client
                .ask(peer, addrs.clone(), protocol, request.clone())
                .await
                .map_err(|e| e.to_string());
            if res.is_ok() {
                break;
            }
        }
        res
    }

    /// This node's DID.
    pub fn node_did(&self) -> &str {
        &self.node_did
    }

    fn peer_of(&self, node: &str) -> Option<(PeerId, Vec<Multiaddr>)> {
        let b = binding_in(&self.dids.current(node)?.1)?;
        let peer = b.peer_id.parse().ok()?;
        Some((
            peer,
            b.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
        ))
    }

    /// What each tenant holding data on patient `p` shares with `requester` for `purpose`
    /// under the consents held here (spec §4); `opt_out` as the network's mode, or `true` for
    /// "everything not objected to" (break the glass).
    pub fn holdings_for(
        &self,
        p: &[u8; 32],
        requester: &str,
        purpose: &str,
        opt_out: bool,
    ) -> Vec<(String, Vec<String>)> {
        match self.record(p) {
            Some(rec) => self.shared(p, &rec, requester, purpose, opt_out),
            None => Vec::new(),
        }
    }

    /// Every tenant here holding data on patient `p`, with all its categories (the patient's
    /// own view: no consent filter; `specs/patient-view.md` §3).
    pub fn tenants_holding(&self, p: &[u8; 32]) -> BTreeMap<String, Vec<String>> {
        self.record(p).map(|r| r.tenants).unwrap_or_default()
    }

    /// The patient's local id at each tenant's source system (tenant DID → id), recorded at
    /// registration.
    pub fn source_patients(&self, p: &[u8; 32]) -> BTreeMap<String, String> {
        self.record(p).map(|r| r.sources).unwrap_or_default()
    }

    /// Whether the network runs opt-out.
    pub fn opt_out(&self) -> bool {
        self.opt_out
    }

    /// The holder nodes of a patient, from the local index.
    pub fn holder_nodes(&self, keys: &PatientKeys) -> Vec<String> {
        self.catch_up();
        self.scan(keys)
            .holders
            .into_iter()
            .map(|(node, _, _)| node)
            .collect()
    }

    /// The transactions a patient's consent pointers name (kind-3 entries, spec §6.4).
    pub fn consent_pointers(&self, keys: &PatientKeys) -> Vec<[u8; 32]> {
        self.catch_up();
        self.scan(keys).consents
    }

    /// Whether localisation is configured here.
    pub fn network_id(&self) -> Option<&str> {
        self.params.as_ref().map(|p| p.network_id.as_str())
    }
}

fn check_categories(categories: &[String]) -> Result<(), LocError> {
    if categories.is_empty() {
        return Err(LocError::Invalid("name at least one category".into()));
    }
    for c in categories {
        if !CATEGORIES.contains(&c.as_str()) {
            return Err(LocError::Invalid(format!(
                "unknown category {c} (one of {CATEGORIES:?})"
            )));
        }
    }
    Ok(())
}

fn holder_answer(node: &str, answer: Result<Vec<u8>, String>) -> HolderAnswer {
    let mut out = HolderAnswer {
        node: node.to_owned(),
        status: String::new(),
        holdings: Vec::new(),
    };
    out.status = match answer {
        Err(e) => {
            warn!(%node, error = %e, "holder node unreachable");
            "unreachable".into()
        }
        Ok(b) if b == MISS => "not_here".into(),
        Ok(b) => match cbor4ii::serde::from_slice::<LocateResponse>(&b) {
            Ok(LocateResponse::Holdings(h)) if h.is_empty() => "no_permitted_data".into(),
            Ok(LocateResponse::Holdings(h)) => {
                out.holdings = h.into_iter().map(|h| (h.holder, h.categories)).collect();
                "ok".into()
            }
            Ok(LocateResponse::Refused(r)) => r,
            Err(_) => "bad_answer".into(),
        },
    };
    out
}

/// Indexes localisation entries after commits, until `stop`.
pub fn spawn(
    loc: Arc<Localisation>,
    log: &knoop_gossip::LogHandle<dyn NodeStore>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::indexing::after_commits(log, stop, "index_localisation", move || loc.catch_up())
}
