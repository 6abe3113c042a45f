//! All `did:knoop` DIDs a node knows, and the authority rules for transactions.
//!
//! Every transaction in a knoop log is signed either
//! - with an embedded key (`jwk`): allowed only for a DID create, whose DID derives from that key;
//! - or with a key of a DID (`kid` = `did:knoop:<id>?versionId=<version>#<fragment>`). The named
//!   version must be one of the transaction's parents, so the DID state it relies on is always in
//!   its causal past and arrives first (the log holds the transaction until it does).
//!
//! A key is valid for a transaction when the DID's *current version in the transaction's causal
//! past* lists it: updates and deactivations need `capabilityInvocation` (of the DID itself or of
//! a controller), other transactions `assertionMethod`. The causal past is fixed by the
//! transaction's parents, so the decision is the same on every node and at any time: a rotation
//! the signer had seen invalidates the old key; a concurrent one does not.
//!
//! The registry holds no IO: ancestry questions go to a [`CausalOracle`] supplied by the node.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;

use super::history::{DidHistory, OpRecord};
use super::id::{did_for_key, VersionId, METHOD};
use super::op::{DidOp, DID_OP_CONTENT_TYPE};
use crate::document::{DidDocument, Relationship};
use crate::url::DidUrl;

/// What the registry needs to know about a transaction.
#[derive(Clone, Copy, Debug)]
pub struct TxFacts<'a> {
    pub id: VersionId,
    pub lc: u64,
    pub sigt: u64,
    pub prevs: &'a [VersionId],
    pub cty: &'a str,
    pub payload: Option<&'a [u8]>,
    /// The embedded key, when the header has `jwk`.
    pub jwk: Option<VerifyingKey>,
    /// The key reference, when the header has `kid`.
    pub kid: Option<&'a str>,
}

/// Answers ancestry questions about the transaction graph.
pub trait CausalOracle {
    /// For each target `(id, lc)`: is it an ancestor of (or one of) `from`?
    fn ancestors(
        &self,
        from: &[VersionId],
        targets: &[(VersionId, u64)],
    ) -> Result<Vec<bool>, String>;
}

/// Why a transaction is not authorised. The message is shown to callers and logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("causal check failed: {0}")]
    Oracle(String),
}

fn unauth(msg: impl Into<String>) -> AuthError {
    AuthError::Unauthorized(msg.into())
}

/// A parsed `kid`: `did:knoop:<id>?versionId=<hex>#<fragment>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKid {
    pub did: String,
    pub version: VersionId,
    pub fragment: String,
}

impl SignerKid {
    pub fn parse(kid: &str) -> Result<Self, AuthError> {
        let u = DidUrl::parse(kid).map_err(|e| AuthError::Malformed(format!("kid: {e}")))?;
        if u.did.method() != METHOD {
            return Err(unauth(format!(
                "kid must name a did:knoop key, not did:{}",
                u.did.method()
            )));
        }
        let version = u
            .param("versionId")
            .and_then(VersionId::from_hex)
            .ok_or_else(|| AuthError::Malformed("kid must carry ?versionId=<64 hex>".into()))?;
        let fragment = u
            .fragment
            .filter(|f| !f.is_empty())
            .ok_or_else(|| AuthError::Malformed("kid must end in #<fragment>".into()))?;
        if u.path.is_some() || u.query.len() != 1 {
            return Err(AuthError::Malformed(
                "kid takes no path and only versionId".into(),
            ));
        }
        Ok(SignerKid {
            did: u.did.as_str().to_owned(),
            version,
            fragment,
        })
    }

    pub fn format(did: &str, version: &VersionId, fragment: &str) -> String {
        format!("{did}?versionId={version}#{fragment}")
    }

    /// The verification method id (`<did>#<fragment>`).
    pub fn method_id(&self) -> String {
        format!("{}#{}", self.did, self.fragment)
    }
}

/// Every known DID and its history.
#[derive(Default)]
pub struct Registry {
    dids: HashMap<String, DidHistory>,
    owner: HashMap<VersionId, String>,
    /// Admitted since the last commit, in order.
    provisional: Vec<VersionId>,
    /// Decoded Ed25519 keys of each version, by method id (decoding a point costs about a third
    /// of a signature check, and every transaction needs one).
    keys: HashMap<VersionId, Vec<(String, VerifyingKey)>>,
}

/// The Ed25519 keys of a document, decoded.
fn decoded_keys(doc: &DidDocument) -> Vec<(String, VerifyingKey)> {
    doc.verification_method
        .iter()
        .filter_map(
            |m| match crate::document::decode_multibase_key(&m.public_key_multibase) {
                Ok(crate::document::PublicKey::Ed25519(k)) => Some((m.id.clone(), k)),
                _ => None,
            },
        )
        .collect()
}

impl Registry {
    pub fn history(&self, did: &str) -> Option<&DidHistory> {
        self.dids.get(did)
    }

    pub fn len(&self) -> usize {
        self.dids.len()
    }

    /// Operations held, over all DIDs.
    pub fn op_count(&self) -> usize {
        self.owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dids.is_empty()
    }

    /// The DID a version belongs to.
    pub fn owner(&self, v: &VersionId) -> Option<&str> {
        self.owner.get(v).map(String::as_str)
    }

    /// Every DID, in no particular order.
    pub fn dids(&self) -> impl Iterator<Item = &String> {
        self.dids.keys()
    }

    /// Adds an operation already validated (when the node loads its store).
    pub fn insert(&mut self, rec: OpRecord) {
        if let Some(doc) = rec.document() {
            self.keys.insert(rec.version, decoded_keys(doc));
        }
        let did = rec.op.did().to_owned();
        self.owner.insert(rec.version, did.clone());
        self.dids.entry(did).or_default().insert(rec);
    }

    /// Everything admitted so far is durable.
    pub fn commit(&mut self) {
        self.provisional.clear();
    }

    /// The commit failed: forget what was admitted since the last [`Registry::commit`].
    pub fn rollback(&mut self) {
        for v in std::mem::take(&mut self.provisional) {
            self.keys.remove(&v);
            if let Some(did) = self.owner.remove(&v) {
                if let Some(h) = self.dids.get_mut(&did) {
                    h.remove(&v);
                    if h.is_empty() {
                        self.dids.remove(&did);
                    }
                }
            }
        }
    }

    /// The key a transaction's signature must verify with, before its parents are placed:
    /// `Ok(None)` when the version its `kid` names is not known yet.
    pub fn signing_key(&self, f: &TxFacts) -> Result<Option<VerifyingKey>, AuthError> {
        match (f.jwk, f.kid) {
            (Some(k), None) => {
                if f.cty != DID_OP_CONTENT_TYPE {
                    return Err(unauth(
                        "only a DID create may embed its key (jwk); sign with a DID key (kid)",
                    ));
                }
                Ok(Some(k))
            }
            (None, Some(kid)) => {
                let s = SignerKid::parse(kid)?;
                if !f.prevs.contains(&s.version) {
                    return Err(unauth(
                        "the DID version named in kid must be one of the transaction's parents",
                    ));
                }
                let Some(rec) = self.version_of(&s.did, &s.version)? else {
                    return Ok(None);
                };
                if rec.document().is_none() {
                    return Err(unauth(format!("{} is deactivated", s.did)));
                }
                let id = s.method_id();
                self.key_in(&s.version, &id)
                    .map(Some)
                    .ok_or_else(|| unauth(format!("{id} is not a key of that version")))
            }
            _ => Err(AuthError::Malformed(
                "exactly one of jwk and kid must be present".into(),
            )),
        }
    }

    /// The decoded Ed25519 key of method `id` in version `v`.
    fn key_in(&self, v: &VersionId, id: &str) -> Option<VerifyingKey> {
        self.keys
            .get(v)?
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, k)| *k)
    }

    /// Whether `key` is method `id` of version `v`, listed under `rel`.
    fn authorises(
        &self,
        did: &str,
        v: &VersionId,
        id: &str,
        rel: Relationship,
        key: &VerifyingKey,
    ) -> bool {
        let listed = self
            .dids
            .get(did)
            .and_then(|h| h.get(v))
            .and_then(|r| r.document())
            .is_some_and(|d| d.relationship(rel).iter().any(|x| x == id));
        listed && self.key_in(v, id).as_ref() == Some(key)
    }

    /// `Ok(None)`: unknown version. Err: a version of another DID.
    fn version_of(&self, did: &str, v: &VersionId) -> Result<Option<&OpRecord>, AuthError> {
        match self.owner.get(v) {
            None => Ok(None),
            Some(o) if o != did => Err(unauth(format!("version {v} is not a version of {did}"))),
            Some(_) => Ok(self.dids.get(did).and_then(|h| h.get(v))),
        }
    }

    /// Decides a transaction whose signature verified with `key` and whose parents are all
    /// placed; an accepted DID operation is recorded (provisionally until [`Registry::commit`]).
    pub fn admit(
        &mut self,
        f: &TxFacts,
        key: &VerifyingKey,
        oracle: &dyn CausalOracle,
    ) -> Result<(), AuthError> {
        if f.cty != DID_OP_CONTENT_TYPE {
            let kid = f.kid.ok_or_else(|| unauth("sign with a DID key (kid)"))?;
            let s = SignerKid::parse(kid)?;
            let head = self.current_in_past(&s.did, &s.version, f, oracle)?;
            if !self.authorises(
                &s.did,
                &head,
                &s.method_id(),
                Relationship::AssertionMethod,
                key,
            ) {
                return Err(unauth(format!(
                    "{} is not an assertionMethod key of the current version of {} in this \
                     transaction's causal past",
                    s.method_id(),
                    s.did
                )));
            }
            return Ok(());
        }
        let payload = f
            .payload
            .ok_or_else(|| AuthError::Malformed("a DID operation must carry its content".into()))?;
        let op = DidOp::parse(payload).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let did = op.did().to_owned();
        let parsed =
            crate::url::Did::parse(&did).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if parsed.method() != METHOD {
            return Err(AuthError::Malformed(format!(
                "{did} is not a did:knoop DID"
            )));
        }
        let signer = match &op {
            DidOp::Create { document } => {
                if f.jwk.as_ref() != Some(key) {
                    return Err(unauth(
                        "a create is signed with its inception key, embedded",
                    ));
                }
                if did_for_key(key) != did {
                    return Err(unauth(format!(
                        "{did} does not derive from the signing key (expected {})",
                        did_for_key(key)
                    )));
                }
                document
                    .validate(&did)
                    .map_err(|e| AuthError::Malformed(e.to_string()))?;
                if !document.has_key(key, Relationship::CapabilityInvocation) {
                    return Err(unauth(
                        "the inception key must be a capabilityInvocation key of the document",
                    ));
                }
                if let Some(h) = self.dids.get(&did) {
                    let known: Vec<(VersionId, u64)> = h
                        .all()
                        .iter()
                        .filter(|r| r.lc < f.lc)
                        .map(|r| (r.version, r.lc))
                        .collect();
                    if !known.is_empty()
                        && oracle
                            .ancestors(f.prevs, &known)
                            .map_err(AuthError::Oracle)?
                            .contains(&true)
                    {
                        return Err(unauth(format!("{did} already exists in the causal past")));
                    }
                }
                "jwk".to_owned()
            }
            DidOp::Update { previous, .. } | DidOp::Deactivate { previous, .. } => {
                let kid = f
                    .kid
                    .ok_or_else(|| unauth("updates are signed with a DID key (kid)"))?;
                let s = SignerKid::parse(kid)?;
                if !f.prevs.contains(previous) {
                    return Err(unauth(
                        "the previous version must be one of the transaction's parents",
                    ));
                }
                let prev = self
                    .version_of(&did, previous)?
                    .ok_or_else(|| unauth(format!("{previous} is not a version of {did}")))?;
                let prev_doc = prev
                    .document()
                    .ok_or_else(|| unauth(format!("{did} is deactivated")))?;
                let prev_controllers = prev_doc.controller.clone();
                let head = self.head_in_past(&did, previous, f, oracle)?;
                if head != *previous {
                    return Err(unauth(format!(
                        "stale update: the current version of {did} in this transaction's causal \
                         past is {head}, not {previous}"
                    )));
                }
                let key_version = if s.did == did {
                    if s.version != *previous {
                        return Err(unauth(
                            "a self-signed update is signed under the version it replaces",
                        ));
                    }
                    *previous
                } else {
                    if !prev_controllers.contains(&s.did) {
                        return Err(unauth(format!("{} is not a controller of {did}", s.did)));
                    }
                    self.current_in_past(&s.did, &s.version, f, oracle)?
                };
                if !self.authorises(
                    &s.did,
                    &key_version,
                    &s.method_id(),
                    Relationship::CapabilityInvocation,
                    key,
                ) {
                    return Err(unauth(format!(
                        "{} is not a capabilityInvocation key of the current version of {}",
                        s.method_id(),
                        s.did
                    )));
                }
                if let DidOp::Update { document, .. } = &op {
                    document
                        .validate(&did)
                        .map_err(|e| AuthError::Malformed(e.to_string()))?;
                }
                kid.to_owned()
            }
        };
        let rec = OpRecord {
            version: f.id,
            lc: f.lc,
            sigt: f.sigt,
            op,
            signer,
        };
        self.provisional.push(rec.version);
        self.insert(rec);
        Ok(())
    }

    /// The current version of `did` in `f`'s causal past, where `anchor` (a version of `did`
    /// among `f`'s parents) is known to be in it. Fails when that version is a deactivation.
    fn current_in_past(
        &self,
        did: &str,
        anchor: &VersionId,
        f: &TxFacts,
        oracle: &dyn CausalOracle,
    ) -> Result<VersionId, AuthError> {
        if !f.prevs.contains(anchor) {
            return Err(unauth(
                "the DID version named in kid must be one of the transaction's parents",
            ));
        }
        self.version_of(did, anchor)?
            .ok_or_else(|| unauth(format!("{anchor} is not a version of {did}")))?;
        let head = self.head_in_past(did, anchor, f, oracle)?;
        let live = self
            .dids
            .get(did)
            .and_then(|h| h.get(&head))
            .is_some_and(|r| r.document().is_some());
        if live {
            Ok(head)
        } else {
            Err(unauth(format!("{did} is deactivated")))
        }
    }

    /// The winning version of `did` among the operations in `f`'s causal past. `anchor` and its
    /// lineage are in it by construction; other operations are asked of the oracle.
    fn head_in_past(
        &self,
        did: &str,
        anchor: &VersionId,
        f: &TxFacts,
        oracle: &dyn CausalOracle,
    ) -> Result<VersionId, AuthError> {
        let h = self
            .dids
            .get(did)
            .ok_or_else(|| unauth(format!("{did} is not known")))?;
        let mut past: HashSet<VersionId> = h.lineage(anchor);
        let others: Vec<(VersionId, u64)> = h
            .all()
            .iter()
            .filter(|r| !past.contains(&r.version) && r.lc < f.lc)
            .map(|r| (r.version, r.lc))
            .collect();
        if !others.is_empty() {
            let found = oracle
                .ancestors(f.prevs, &others)
                .map_err(AuthError::Oracle)?;
            for ((v, _), yes) in others.iter().zip(found) {
                if yes {
                    past.extend(h.lineage(v));
                }
            }
        }
        h.chain_where(&|r| past.contains(&r.version))
            .last()
            .map(|r| r.version)
            .ok_or_else(|| unauth(format!("{did} has no version in the causal past")))
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
