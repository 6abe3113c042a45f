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
use std::time::{Duration, Instant};

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
use tracing::{info, warn};

use crate::credentials::Credentials;
use crate::did_ops::{DidOps, OpsError};
use crate::did_state::DidState;
use crate::private::signer_did;
use crate::store::RocksStore;

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

/// The node's localisation state.
pub struct Localisation {
    ops: Arc<DidOps>,
    dids: Arc<DidState>,
    store: Arc<RocksStore>,
    credentials: Arc<Credentials>,
    consents: Arc<crate::consent::Consents>,
    private: Arc<crate::private::Private>,
    audit: Arc<crate::audit::AuditLog>,
    node_did: String,
    params: Option<NetworkParams>,
    opt_out: bool,
    ask: OnceLock<AskClient>,
    seen: Mutex<u64>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Serialises registrations, so two for one patient do not both publish an entry.
    register_lock: tokio::sync::Mutex<()>,
}

impl Localisation {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ops: Arc<DidOps>,
        dids: Arc<DidState>,
        store: Arc<RocksStore>,
        credentials: Arc<Credentials>,
        consents: Arc<crate::consent::Consents>,
        private: Arc<crate::private::Private>,
        audit: Arc<crate::audit::AuditLog>,
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
            buckets: Mutex::new(HashMap::new()),
            register_lock: tokio::sync::Mutex::new(()),
        }
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

    /// Indexes localisation entries committed since the last call.
    pub fn catch_up(&self) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let (last, txs) = crate::store::read_by_type(self.store.as_ref(), LOC_CONTENT_TYPE, *seen);
        let mut batch = Vec::new();
        for (seq, tx, payload) in txs {
            let signer = signer_did(&tx).unwrap_or_default();
            let Ok(entries) = decode_content(&payload) else {
                continue;
            };
            for (i, e) in entries.iter().enumerate() {
                let key = [&e[..16], &seq.to_be_bytes(), &(i as u16).to_be_bytes()].concat();
                let value = [&tx.id().0[..], &e[..], signer.as_bytes()].concat();
                batch.push((key, value));
            }
        }
        if let Err(e) = self.store.put_loc(&batch) {
            warn!(error = %e, "indexing localisation entries failed; retried");
            return;
        }
        *seen = last;
        let _ = self.store.put_meta(LOC_SEEN_KEY, &last.to_be_bytes());
    }

    /// Reads a patient's slots from the index.
    fn scan(&self, keys: &PatientKeys) -> ScanResult {
        let lookup = |tag: &[u8; 16]| -> Vec<StoredEntry> {
            self.store
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

    fn record(&self, p: &[u8; 32]) -> Option<PatientRecord> {
        let v = self.store.get_private(&record_key(p)).ok()??;
        serde_json::from_slice(&v).ok()
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
        let _guard = self.register_lock.lock().await;
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
        for (which, k) in [
            ("tag", &keys.k_tag),
            ("ent", &keys.k_ent),
            ("pat", &keys.k_pat),
        ] {
            self.ops
                .keys
                .put_bytes(&key_id(&keys.p, which), k)
                .map_err(OpsError::from)?;
        }
        let mut published = None;
        if rec.own.is_none() {
            let id = self.publish_entry(keys, &EntryKind::Held).await?;
            rec.own = Some((id.to_hex(), 0));
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
        let _guard = self.register_lock.lock().await;
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
                let id = self
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

    /// Publishes one entry of `kind` in the patient's first free slot.
    async fn publish_entry(
        &self,
        keys: &PatientKeys,
        kind: &EntryKind,
    ) -> Result<knoop_gossip::TxId, LocError> {
        self.catch_up();
        let slot = self.scan(keys).free_slot.ok_or(LocError::SlotsExhausted)?;
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let entry = seal_entry(keys, slot, &self.node_did, kind, &nonce);
        let id = self
            .ops
            .publish_as(&self.node_did, LOC_CONTENT_TYPE, encode_content(&[entry]))
            .await?;
        info!(tx = %id, slot, "localisation entry published");
        Ok(id)
    }

    /// Publishes a pointer to private transaction `tx` about the patient (a consent or its
    /// revocation), so holders that come later find it (spec §5.4).
    pub async fn point_to(
        &self,
        keys: &PatientKeys,
        tx: &knoop_gossip::TxId,
    ) -> Result<(), LocError> {
        let _guard = self.register_lock.lock().await;
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
                    match (self.peer_of(node), self.ask.get()) {
                        (Some((peer, addrs)), Some(client)) => {
                            // A holder node not yet connected may take a moment to be found
                            // through discovery: a few tries, 0.3 s apart, within the 5 s
                            // answer budget.
                            let mut res = Err(String::new());
                            for attempt in 0..LOCATE_TRIES {
                                if attempt > 0 {
                                    tokio::time::sleep(Duration::from_millis(300)).await;
                                }
                                res = client
                                    .ask(peer, addrs.clone(), AskProtocol::Locate, bytes.clone())
                                    .await
                                    .map_err(|e| e.to_string());
                                if res.is_ok() {
                                    break;
                                }
                            }
                            res
                        }
                        _ => Err("no address for this node".into()),
                    }
                };
                holder_answer(node, answer)
            }
        });
        Ok(futures::future::join_all(asks).await)
    }

    fn peer_of(&self, node: &str) -> Option<(PeerId, Vec<Multiaddr>)> {
        let b = binding_in(&self.dids.current(node)?.1)?;
        let peer = b.peer_id.parse().ok()?;
        Some((
            peer,
            b.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
        ))
    }

    /// Answers `/knoop/locate/1` from `peer`.
    pub fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8> {
        let operator = self.dids.did_of_peer(&peer.to_string());
        self.decide(&peer.to_string(), operator, request)
    }

    /// The holder's decision (spec §7), logged whatever it is.
    fn decide(&self, peer: &str, operator: Option<String>, request: &[u8]) -> Vec<u8> {
        let encode = |r: &LocateResponse| cbor4ii::serde::to_vec(Vec::new(), r).unwrap_or_default();
        let Ok(req) = cbor4ii::serde::from_slice::<LocateRequest>(request) else {
            return encode(&LocateResponse::Refused("bad_request".into()));
        };
        let Ok(p) = <[u8; 32]>::try_from(req.patient.as_slice()) else {
            return encode(&LocateResponse::Refused("bad_request".into()));
        };
        let mut audit = crate::audit::Event {
            kind: "locate".into(),
            peer: peer.to_owned(),
            operator: operator.clone(),
            requester: req.requester.clone(),
            who: req.who.chars().take(128).collect(),
            purpose: req.purpose.clone(),
            patient: format!(
                "{}{}",
                knoop_privacy::patient::PATIENT_REF_PREFIX,
                base64::Engine::encode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, p)
            ),
            outcome: String::new(),
            categories: Vec::new(),
            scope: String::new(),
        };
        let (outcome, response) = match self.allowed(operator.as_deref(), &req) {
            Err(why) => (why, MISS.to_vec()),
            Ok(()) if !self.take_token(&req.requester) => (
                "rate_limited".to_owned(),
                encode(&LocateResponse::Refused("rate_limited".into())),
            ),
            Ok(()) => match self.record(&p) {
                None => ("unknown_patient".to_owned(), MISS.to_vec()),
                Some(rec) => {
                    let holdings: Vec<Holding> = self
                        .shared(&p, &rec, &req.requester, &req.purpose, self.opt_out)
                        .into_iter()
                        .map(|(holder, categories)| Holding { holder, categories })
                        .collect();
                    audit.categories = holdings
                        .iter()
                        .flat_map(|h| h.categories.iter().cloned())
                        .collect();
                    let outcome = if holdings.is_empty() {
                        "no_permitted_data"
                    } else {
                        "answered"
                    };
                    (
                        outcome.to_owned(),
                        encode(&LocateResponse::Holdings(holdings)),
                    )
                }
            },
        };
        audit.outcome = outcome;
        self.audit.append(audit);
        response
    }

    /// Who may ask (spec §7 step 3): a member node, for itself or an organisation it hosts
    /// that holds a trusted organisation credential.
    fn allowed(&self, operator: Option<&str>, req: &LocateRequest) -> Result<(), String> {
        let operator = operator.ok_or("not_a_member_node")?;
        if !PURPOSES.contains(&req.purpose.as_str()) {
            return Err("bad_purpose".into());
        }
        let hosted_there = req.requester == operator
            || self.dids.current(&req.requester).is_some_and(|(_, doc)| {
                doc.service_of_type(HOST_SERVICE_TYPE)
                    .is_some_and(|s| s.service_endpoint == operator)
            });
        if !hosted_there {
            return Err("requester_not_hosted_by_the_asking_node".into());
        }
        if self.credentials.organisation(&req.requester).is_none() {
            return Err("requester_not_a_trusted_organisation".into());
        }
        Ok(())
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

    /// The patient's local id at each tenant's source system (tenant DID → id), recorded at
    /// registration.
    pub fn source_patients(&self, p: &[u8; 32]) -> BTreeMap<String, String> {
        self.record(p).map(|r| r.sources).unwrap_or_default()
    }

    /// Whether the network runs opt-out.
    pub fn opt_out(&self) -> bool {
        self.opt_out
    }

    /// The categories each tenant shares for this request, under the consent mode and the
    /// consents held here about the patient (spec §4).
    fn shared(
        &self,
        p: &[u8; 32],
        rec: &PatientRecord,
        requester: &str,
        purpose: &str,
        opt_out: bool,
    ) -> Vec<(String, Vec<String>)> {
        let reference = format!(
            "{}{}",
            knoop_privacy::patient::PATIENT_REF_PREFIX,
            base64::Engine::encode(&base64::prelude::BASE64_URL_SAFE_NO_PAD, p)
        );
        let consents = self.consents.applicable(&reference);
        let type_of = |did: &str| {
            self.credentials
                .organisation(did)
                .map(|e| e.organization_type)
        };
        let requester_type = type_of(requester);
        let now_ms = knoop_gossip::tx::now_ms() as i64;
        rec.tenants
            .iter()
            .filter_map(|(holder, cats)| {
                let holder_type = type_of(holder);
                let categories: Vec<String> = cats
                    .iter()
                    .filter(|c| {
                        crate::consent::shared(
                            opt_out,
                            &consents,
                            &crate::consent::Question {
                                holder,
                                holder_type: holder_type.as_deref(),
                                requester,
                                requester_type: requester_type.as_deref(),
                                category: c,
                                purpose,
                                now_ms,
                            },
                        )
                    })
                    .cloned()
                    .collect();
                (!categories.is_empty()).then(|| (holder.clone(), categories))
            })
            .collect()
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

    /// Whether localisation is configured here.
    pub fn network_id(&self) -> Option<&str> {
        self.params.as_ref().map(|p| p.network_id.as_str())
    }

    fn take_token(&self, requester: &str) -> bool {
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        if b.len() > 10_000 {
            b.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, at) = b
            .entry(requester.to_owned())
            .or_insert((REQUESTER_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * REQUESTER_RATE).min(REQUESTER_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
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
    log: &knoop_gossip::LogHandle<RocksStore>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::node::after_commits(log, stop, "index_localisation", move || loc.catch_up())
}
