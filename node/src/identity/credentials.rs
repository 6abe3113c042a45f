//! Credentials on the node (spec: `specs/credentials.md`): the index of credentials published
//! on the network and of revocations, the trust store, verification against DID history, and
//! the organisation directory built from trusted, unrevoked organisation credentials.
//!
//! Published credentials are verified when they are indexed (an indexer task reading the log's
//! by-type index), never on the gossip ingest path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use knoop_did::document::Relationship;
use knoop_gossip::Transaction;
use knoop_vc::jws::PublicJwk;
use knoop_vc::types::{knoop_contexts, Claims};
use knoop_vc::verify::{verify_credential, Failure, StatusLookup, Verified, VerifierEnv};
use knoop_vc::Contexts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::did_state::DidState;
use crate::store::NodeStore;

/// Content type of a published credential.
pub const VC_CONTENT_TYPE: &str = "application/vc";
/// Content type of a revocation.
pub const REVOCATION_CONTENT_TYPE: &str = "application/knoop-vc-revocation+json";

/// A revocation, as published (signed by the issuer's DID).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub credential: String,
    pub issuer: String,
    #[serde(default)]
    pub reason: String,
}

/// Trusted issuers per credential type.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Trust(pub BTreeMap<String, BTreeSet<String>>);

/// One organisation in the directory.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub did: String,
    pub legal_name: String,
    pub city: String,
    pub organization_type: String,
    pub ura: String,
    pub credential: String,
    pub issuer: String,
}

#[derive(Default)]
struct Index {
    /// Published credentials that verified when indexed (trust and revocation are re-checked at
    /// use), by credential id.
    credentials: HashMap<String, (Value, Verified)>,
    /// `(issuer, credential id)` → reason.
    revoked: HashMap<(String, String), String>,
    /// Last by-type sequence numbers read.
    seen_vc: u64,
    seen_rev: u64,
}

/// The node's credential state.
pub struct Credentials {
    dids: Arc<DidState>,
    contexts: Contexts,
    index: RwLock<Index>,
    trust: RwLock<Trust>,
    /// Trust from config: cannot be removed over RPC.
    configured: Trust,
    store: Arc<dyn NodeStore>,
}

const TRUST_KEY: &[u8] = b"trust";

/// The trust table's role name of the organisations trusted as patient services
/// (`specs/patient-view.md` §1): they may ask holders for a patient's own view, and register
/// consents and objections for the patients who log in there.
pub const PATIENT_SERVICE_ROLE: &str = "PatientService";

fn now_ms() -> i64 {
    knoop_gossip::tx::now_ms() as i64
}

/// What was fetched over HTTPS before one verification (`prefetch.rs`): status lists by URL
/// and did:web documents by DID. `Fetched::default()` fetched nothing: status lists are then
/// unavailable and did:web keys unknown.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    pub lists: HashMap<String, StatusLookup>,
    pub dids: HashMap<String, Result<Value, String>>,
    /// Trusted Dezi key sets by URL (`jku`).
    pub key_sets: HashMap<String, Result<knoop_vc::dezi::KeySet, String>>,
}

/// The environment of one verification.
struct Env<'a> {
    c: &'a Credentials,
    /// Skip trust (used when indexing: trust may change later).
    skip_trust: bool,
    /// Fetched beforehand; `None`: status lists are not checked and did:web keys are unknown
    /// (indexing; they are checked at use).
    fetched: Option<&'a Fetched>,
}

impl Env<'_> {
    fn key(&self, vm: &str, at_ms: i64, rel: Relationship) -> Result<PublicJwk, String> {
        let did = vm.split('#').next().unwrap_or_default();
        if did.starts_with("did:web:") {
            let doc = self
                .fetched
                .and_then(|f| f.dids.get(did))
                .ok_or_else(|| format!("{did} was not fetched (did:web keys are checked at use)"))?
                .as_ref()
                .map_err(Clone::clone)?;
            return web_key(doc, vm, rel);
        }
        self.c.key_at(vm, at_ms, rel)
    }
}

/// The signing key `vm` of a did:web document, if relationship `rel` lists it (by absolute or
/// relative id, or embedded). A did:web document has no history: this is its key now.
fn web_key(doc: &Value, vm: &str, rel: Relationship) -> Result<PublicJwk, String> {
    let fragment = vm.split_once('#').map(|(_, f)| format!("#{f}"));
    let is_vm = |id: Option<&str>| id.is_some_and(|i| i == vm || Some(i) == fragment.as_deref());
    let listed = doc[rel.name()].as_array().into_iter().flatten();
    let mut method = None;
    for r in listed {
        if is_vm(r.as_str()) {
            method = doc["verificationMethod"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| is_vm(m["id"].as_str())));
            break;
        }
        if is_vm(r["id"].as_str()) {
            method = Some(r);
            break;
        }
    }
    let m =
        method.ok_or_else(|| format!("{vm} is not an {} key of its did:web DID", rel.name()))?;
    method_key(m).map_err(|e| format!("{vm}: {e}"))
}

impl VerifierEnv for Env<'_> {
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String> {
        self.key(vm, at_ms, Relationship::AssertionMethod)
    }
    fn revoked(&self, issuer: &str, id: &str) -> Option<String> {
        let idx = self.c.index.read().ok()?;
        idx.revoked
            .get(&(issuer.to_owned(), id.to_owned()))
            .cloned()
    }
    fn status_list(&self, url: &str) -> StatusLookup {
        match self.fetched {
            None => StatusLookup::NotChecked,
            Some(f) => f.lists.get(url).cloned().unwrap_or_else(|| {
                StatusLookup::Unavailable("the status list was not fetched".into())
            }),
        }
    }
    fn trusted(&self, issuer: &str, claims: &Claims) -> Result<(), String> {
        if self.skip_trust {
            return Ok(());
        }
        self.c.trusted(issuer, claims)
    }
    fn now_ms(&self) -> i64 {
        now_ms()
    }
    fn key_set(&self, url: &str) -> Result<knoop_vc::dezi::KeySet, String> {
        self.fetched
            .and_then(|f| f.key_sets.get(url))
            .ok_or_else(|| format!("{url} is not a trusted Dezi key set (trust.dezi_key_sets)"))?
            .clone()
    }
}

impl knoop_vc::presentation::HolderEnv for Env<'_> {
    fn holder_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String> {
        self.key(vm, at_ms, Relationship::Authentication)
    }
}

/// Why a trust change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("{0}")]
    Invalid(String),
    #[error("trust lock")]
    Poisoned,
    #[error("saving the trust list: {0}")]
    Store(#[from] knoop_gossip::StoreError),
    #[error("encoding the trust list: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Credentials {
    pub fn open(
        dids: Arc<DidState>,
        store: Arc<dyn NodeStore>,
        configured: Trust,
    ) -> Result<Self, knoop_gossip::StoreError> {
        let saved: Trust = match store.get_meta(TRUST_KEY)? {
            Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
            None => Trust::default(),
        };
        let mut trust = saved;
        for (t, issuers) in &configured.0 {
            trust
                .0
                .entry(t.clone())
                .or_default()
                .extend(issuers.iter().cloned());
        }
        let c = Credentials {
            dids,
            contexts: knoop_contexts(),
            index: RwLock::new(Index::default()),
            trust: RwLock::new(trust),
            configured,
            store,
        };
        c.catch_up();
        Ok(c)
    }

    /// The Ed25519 key of `vm` if it was a `rel` key of its DID at `at_ms`.
    fn key_at(&self, vm: &str, at_ms: i64, rel: Relationship) -> Result<PublicJwk, String> {
        let did = vm.split('#').next().unwrap_or_default();
        if did.starts_with("did:key:") || did.starts_with("did:jwk:") {
            return static_did_key(did, vm, rel);
        }
        let at = u64::try_from(at_ms).map_err(|_| "proof created before 1970".to_owned())?;
        self.dids
            .with_history(did, |h| {
                let rec = h
                    .at_time(at)
                    .ok_or_else(|| format!("{did} did not exist at the proof's creation time"))?;
                let doc = rec
                    .document()
                    .ok_or_else(|| format!("{did} was deactivated at the proof's creation time"))?;
                doc.signing_key_for(vm, rel)
                    .and_then(PublicJwk::from_multikey)
                    .ok_or_else(|| {
                        format!(
                            "{vm} was not an {} key of {did} at the proof's creation time \
                         (version {})",
                            rel.name(),
                            rec.version
                        )
                    })
            })
            .unwrap_or_else(|| Err(format!("{did} is not known")))
    }

    /// The trust rule (spec §4): organisation credentials from issuers trusted for the type;
    /// professional credentials from issuers trusted for the type, or from an organisation with
    /// a trusted, valid organisation credential, for its own employees only; any other
    /// credential from an issuer trusted for one of its types.
    pub fn trusted(&self, issuer: &str, claims: &Claims) -> Result<(), String> {
        let t = claims.type_name();
        // A did:x509 issuer is trusted through its CA: an entry `did:x509:0:<hash>:<CA
        // fingerprint>` trusts every DID anchored there (`specs/did-x509.md` §4).
        let covers = |entry: &String| {
            entry == issuer
                || (entry.starts_with("did:x509:")
                    && issuer
                        .strip_prefix(entry.as_str())
                        .is_some_and(|rest| rest.starts_with("::")))
        };
        let listed = self
            .trust
            .read()
            .map(|tr| {
                claims
                    .types()
                    .iter()
                    .any(|t| tr.0.get(*t).is_some_and(|s| s.iter().any(covers)))
            })
            .unwrap_or(false);
        if listed {
            return Ok(());
        }
        // A consent is registered by a trusted care organisation (or an issuer trusted for
        // the type, e.g. a patient portal authority).
        if matches!(claims, Claims::PatientConsent(_)) && self.organisation(issuer).is_some() {
            return Ok(());
        }
        // A patient service registers consents and objections for the patients who log in
        // there (`specs/patient-view.md` §1).
        if matches!(claims, Claims::PatientConsent(_))
            && self.holds_role(PATIENT_SERVICE_ROLE, issuer)
        {
            return Ok(());
        }
        if let Claims::HealthcareProfessional(p) = claims {
            if self.organisation(issuer).is_some() {
                if p.employer == issuer {
                    return Ok(());
                }
                return Err(format!(
                    "{issuer} is a trusted organisation but may only issue professional \
                     credentials for its own employees (employer is {})",
                    p.employer
                ));
            }
        }
        Err(format!("{issuer} is not a trusted issuer of {t}"))
    }

    /// The directory entry of `did`, if it holds a trusted, valid, unrevoked organisation
    /// credential.
    /// The organisation with URA `ura` in the directory that is one of `hosted` (a node's
    /// tenants): the tenant a URA names.
    pub fn hosted_by_ura(&self, ura: &str, hosted: &[String]) -> Option<DirectoryEntry> {
        self.directory(&Query {
            ura: Some(ura.to_owned()),
            ..Default::default()
        })
        .into_iter()
        .find(|e| hosted.contains(&e.did))
    }

    pub fn organisation(&self, did: &str) -> Option<DirectoryEntry> {
        self.directory(&Query {
            did: Some(did.to_owned()),
            ..Default::default()
        })
        .into_iter()
        .next()
    }

    /// Verifies a credential now (trust included), with what was fetched for it.
    pub fn verify(&self, doc: &Value, fetched: &Fetched) -> Result<Verified, Failure> {
        verify_credential(
            doc,
            &Env {
                c: self,
                skip_trust: false,
                fetched: Some(fetched),
            },
            &self.contexts,
            true,
        )
    }

    /// Verifies a credential now without the trust rule (a wallet checks that what it receives
    /// is genuine and unrevoked; trust is each verifier's own).
    pub fn verify_genuine(&self, doc: &Value, fetched: &Fetched) -> Result<Verified, Failure> {
        verify_credential(
            doc,
            &Env {
                c: self,
                skip_trust: true,
                fetched: Some(fetched),
            },
            &self.contexts,
            true,
        )
    }

    /// The key `vm` of relationship `rel` now: of a did:knoop DID, a did:key or did:jwk, or a
    /// did:web document in `fetched`.
    pub fn key_now(
        &self,
        vm: &str,
        rel: Relationship,
        fetched: &Fetched,
    ) -> Result<PublicJwk, String> {
        Env {
            c: self,
            skip_trust: true,
            fetched: Some(fetched),
        }
        .key(vm, now_ms(), rel)
    }

    /// Verifies a presentation made for `challenge` and `domain`, with its credentials.
    pub fn verify_presentation(
        &self,
        vp: &Value,
        challenge: &str,
        domain: &str,
        fetched: &Fetched,
    ) -> Result<
        knoop_vc::presentation::VerifiedPresentation,
        knoop_vc::presentation::PresentationFailure,
    > {
        knoop_vc::presentation::verify_presentation(
            vp,
            &Env {
                c: self,
                skip_trust: false,
                fetched: Some(fetched),
            },
            &self.contexts,
            challenge,
            domain,
        )
    }

    /// Verifies a VC 1.1 presentation JWT for one of `audiences` (the assertion of an RFC 7523
    /// token request) and every credential in it, at `now_s`.
    pub fn verify_presentation_jwt(
        &self,
        jwt: &str,
        audiences: &[&str],
        fetched: &Fetched,
        now_s: i64,
    ) -> Result<
        knoop_vc::presentation::VerifiedJwtPresentation,
        knoop_vc::presentation::PresentationFailure,
    > {
        knoop_vc::presentation::verify_presentation_jwt(
            jwt,
            &Env {
                c: self,
                skip_trust: false,
                fetched: Some(fetched),
            },
            &self.contexts,
            audiences,
            now_s,
        )
    }

    /// Reads credentials and revocations published since the last call.
    pub fn catch_up(&self) {
        let (after_vc, after_rev) = match self.index.read() {
            Ok(i) => (i.seen_vc, i.seen_rev),
            Err(_) => return,
        };
        // Revocations first, so a credential and its revocation in one round index correctly.
        let revs =
            crate::store::read_by_type(self.store.as_ref(), REVOCATION_CONTENT_TYPE, after_rev);
        let vcs = crate::store::read_by_type(self.store.as_ref(), VC_CONTENT_TYPE, after_vc);
        let mut new_revocations = Vec::new();
        for (_, tx, payload) in &revs.1 {
            match check_revocation(tx, payload) {
                Ok(r) => new_revocations.push(r),
                Err(e) => tracing::info!(tx = %tx.id(), error = %e, "revocation ignored"),
            }
        }
        if let Ok(mut idx) = self.index.write() {
            for r in new_revocations {
                idx.revoked.insert((r.issuer, r.credential), r.reason);
            }
            idx.seen_rev = idx.seen_rev.max(revs.0);
        }
        let mut verified = Vec::new();
        for (_, tx, payload) in &vcs.1 {
            let doc: Value = match serde_json::from_slice(payload) {
                Ok(v) => v,
                Err(e) => {
                    tracing::info!(tx = %tx.id(), error = %e, "published credential is not JSON");
                    continue;
                }
            };
            let env = Env {
                c: self,
                skip_trust: true,
                fetched: None,
            };
            match verify_credential(&doc, &env, &self.contexts, true) {
                Ok(v) => match &v.id {
                    Some(_) => verified.push((doc, v)),
                    None => {
                        tracing::info!(tx = %tx.id(), "published credential without an id ignored")
                    }
                },
                Err(e) => {
                    tracing::info!(tx = %tx.id(), code = e.code(), error = %e, "published credential not indexed")
                }
            }
        }
        if let Ok(mut idx) = self.index.write() {
            for (doc, v) in verified {
                if let Some(id) = v.id.clone() {
                    idx.credentials.insert(id, (doc, v));
                }
            }
            idx.seen_vc = idx.seen_vc.max(vcs.0);
        }
    }

    /// Whether `did` is listed under `role_or_type` in the trust table.
    pub fn holds_role(&self, role_or_type: &str, did: &str) -> bool {
        self.trust
            .read()
            .map(|tr| tr.0.get(role_or_type).is_some_and(|s| s.contains(did)))
            .unwrap_or(false)
    }

    pub fn trust(&self) -> Trust {
        self.trust.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Trusts `issuer` for credential type `type_` (knoop's types or any other).
    pub fn set_trust(&self, type_: &str, issuer: &str, trusted: bool) -> Result<(), TrustError> {
        if !is_type_name(type_) {
            return Err(TrustError::Invalid(format!(
                "{type_:?} is not a credential type name (1..128 letters, digits, '_', '-', '.', \
                 ':', '/', '#')"
            )));
        }
        if type_ == "VerifiableCredential" {
            return Err(TrustError::Invalid(
                "trust is per specific type, not for every VerifiableCredential".into(),
            ));
        }
        knoop_did::url::Did::parse(issuer).map_err(|e| TrustError::Invalid(e.to_string()))?;
        if !trusted
            && self
                .configured
                .0
                .get(type_)
                .is_some_and(|s| s.contains(issuer))
        {
            return Err(TrustError::Invalid(format!(
                "{issuer} is trusted by the node's config; change it there"
            )));
        }
        let mut t = self.trust.write().map_err(|_| TrustError::Poisoned)?;
        if trusted {
            t.0.entry(type_.to_owned())
                .or_default()
                .insert(issuer.to_owned());
        } else if let Some(s) = t.0.get_mut(type_) {
            s.remove(issuer);
        }
        self.store.put_meta(TRUST_KEY, &serde_json::to_vec(&*t)?)?;
        Ok(())
    }

    /// Organisations matching `q` among trusted, valid, unrevoked organisation credentials.
    pub fn directory(&self, q: &Query) -> Vec<DirectoryEntry> {
        let Ok(idx) = self.index.read() else {
            return Vec::new();
        };
        let now = now_ms();
        let lower = |s: &Option<String>| s.as_ref().map(|x| x.to_lowercase());
        let (name, city, type_) = (lower(&q.name), lower(&q.city), lower(&q.organization_type));
        let mut out: Vec<DirectoryEntry> = idx
            .credentials
            .values()
            .filter_map(|(_, v)| {
                let Claims::CareOrganization(o) = &v.claims else {
                    return None;
                };
                let matches = q.did.as_ref().is_none_or(|d| *d == o.id)
                    && q.ura.as_ref().is_none_or(|u| *u == o.ura)
                    && name
                        .as_ref()
                        .is_none_or(|n| o.legal_name.to_lowercase().contains(n))
                    && city.as_ref().is_none_or(|c| o.city.to_lowercase() == *c)
                    && type_
                        .as_ref()
                        .is_none_or(|t| o.organization_type.to_lowercase() == *t);
                if !matches {
                    return None;
                }
                let id = v.id.clone().unwrap_or_default();
                let live = v.valid_until_ms.is_none_or(|u| now < u)
                    && v.valid_from_ms.is_none_or(|f| now >= f)
                    && !idx.revoked.contains_key(&(v.issuer.clone(), id.clone()));
                if !live || self.trusted(&v.issuer, &v.claims).is_err() {
                    return None;
                }
                Some(DirectoryEntry {
                    did: o.id.clone(),
                    legal_name: o.legal_name.clone(),
                    city: o.city.clone(),
                    organization_type: o.organization_type.clone(),
                    ura: o.ura.clone(),
                    credential: id,
                    issuer: v.issuer.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.legal_name.cmp(&b.legal_name).then(a.did.cmp(&b.did)));
        out.dedup_by(|a, b| a.did == b.did);
        out.truncate(q.limit.unwrap_or(100).min(1000));
        out
    }

    /// Number of indexed credentials and revocations.
    pub fn counts(&self) -> (usize, usize) {
        self.index
            .read()
            .map(|i| (i.credentials.len(), i.revoked.len()))
            .unwrap_or_default()
    }
}

/// A credential type as a term or an absolute IRI.
fn is_type_name(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/#".contains(&b))
}

/// The signing key `vm` of a did:key or did:jwk (keys that never change), if `rel` lists it.
fn static_did_key(did: &str, vm: &str, rel: Relationship) -> Result<PublicJwk, String> {
    let doc = if did.starts_with("did:key:") {
        knoop_did::external::resolve_did_key(did)
    } else {
        knoop_did::external::resolve_did_jwk(did)
    }
    .map_err(|e| e.to_string())?;
    let listed = doc[rel.name()].as_array().is_some_and(|a| {
        a.iter()
            .any(|r| r.as_str() == Some(vm) || r.get("id").and_then(Value::as_str) == Some(vm))
    });
    if !listed {
        return Err(format!("{vm} is not an {} key of {did}", rel.name()));
    }
    let m = doc["verificationMethod"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["id"] == vm))
        .ok_or_else(|| format!("{vm} is not a key of {did}"))?;
    method_key(m).map_err(|e| format!("{vm}: {e}"))
}

/// The signing key of a verification method: a `Multikey` (Ed25519, P-256) or a `publicKeyJwk`
/// of a type `specs/jose.md` §3 accepts.
pub fn method_key(m: &Value) -> Result<PublicJwk, String> {
    if let Some(mb) = m["publicKeyMultibase"].as_str() {
        let key = knoop_did::document::decode_multibase_key(mb).map_err(|e| e.0)?;
        PublicJwk::from_multikey(key).ok_or_else(|| "not a signing key".to_owned())
    } else if m.get("publicKeyJwk").is_some() {
        PublicJwk::from_json(&m["publicKeyJwk"]).map_err(|e| e.to_string())
    } else {
        Err("no publicKeyMultibase or publicKeyJwk".into())
    }
}

/// A directory query; every given field must match (name: substring, case-insensitive).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub did: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    #[serde(rename = "type")]
    pub organization_type: Option<String>,
    pub ura: Option<String>,
    pub limit: Option<usize>,
}

/// A revocation counts only when the issuer's own DID signed its transaction.
fn check_revocation(tx: &Transaction, payload: &[u8]) -> Result<Revocation, String> {
    let r: Revocation = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let signer = crate::identity::did_state::signer_did(tx).unwrap_or_default();
    if signer != r.issuer {
        return Err(format!(
            "signed by {signer}, but only the issuer {} may revoke",
            r.issuer
        ));
    }
    Ok(r)
}
