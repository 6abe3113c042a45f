//! DIDs this node hosts: creating them, changing them, and signing transactions as them, with
//! keys from the [`KeyStore`]. Every change is one DID operation transaction on the log.

use std::sync::Arc;

use knoop_did::binding::sign_binding;
use knoop_did::document::{DidDocument, Relationship, Service};
use knoop_did::knoop::registry::SignerKid;
use knoop_did::knoop::services::HOST_SERVICE_TYPE;
use knoop_did::knoop::{did_for_key, DidOp, VersionId, DID_OP_CONTENT_TYPE};
use knoop_gossip::tx::MAX_PREVS;
use knoop_gossip::{Hash32, LogHandle, TxBuilder, TxError, TxId};
use serde::Deserialize;

use crate::identity::did_state::DidState;
use crate::identity::keystore::{KeyStore, KeyStoreError};
use crate::store::NodeStore;

/// Relationships of a signing key a node generates for a DID.
/// The fragment of the P-256 key a new DID gets.
pub const ES256_FRAGMENT: &str = "es256-1";
/// What a P-256 key is for: JOSE credentials and presentations (never DID operations).
pub const ES256_RELATIONSHIPS: [Relationship; 2] =
    [Relationship::Authentication, Relationship::AssertionMethod];

pub const SIGNING_RELATIONSHIPS: [Relationship; 3] = [
    Relationship::Authentication,
    Relationship::AssertionMethod,
    Relationship::CapabilityInvocation,
];

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0} is not known")]
    NotFound(String),
    #[error("{0} is deactivated")]
    Deactivated(String),
    #[error("this node holds no key that may change {0}")]
    NotHosted(String),
    #[error("{0}")]
    Invalid(String),
    #[error("refused by the log: {0}")]
    Rejected(#[from] TxError),
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error("the node is shutting down")]
    Stopped,
}

/// A service to put in a document.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Fragment of the service id (`<did>#<id>`); defaults to the type in lowercase.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(rename = "serviceEndpoint")]
    pub endpoint: serde_json::Value,
}

impl ServiceSpec {
    pub fn to_service(&self, did: &str) -> Service {
        let frag = self
            .id
            .clone()
            .unwrap_or_else(|| self.type_.to_ascii_lowercase());
        Service {
            id: format!("{did}#{frag}"),
            type_: self.type_.clone(),
            service_endpoint: self.endpoint.clone(),
        }
    }
}

/// Hosted DIDs and their operations.
pub struct DidOps {
    pub state: Arc<DidState>,
    pub keys: Arc<KeyStore>,
    pub log: LogHandle<dyn NodeStore>,
    /// The public base URL under which hosted DIDs have did:web ids (`specs/did-web.md`), once
    /// the public API is bound; new DIDs then name theirs in `alsoKnownAs`.
    pub web_base: std::sync::OnceLock<url::Url>,
}

/// The signer for a change: key id in the keystore, `kid`, and the DID version to name as a
/// parent (with its clock).
struct Signer {
    key_id: String,
    kid: String,
    parent: (TxId, u64),
}

/// Parents for a new transaction: the named ones plus as many heads as fit.
fn merge_prevs(heads: &[(TxId, u64)], required: &[(TxId, u64)]) -> Vec<(TxId, u64)> {
    let mut out: Vec<(TxId, u64)> = required.to_vec();
    for h in heads {
        if out.len() >= MAX_PREVS {
            break;
        }
        if !out.iter().any(|p| p.0 == h.0) {
            out.push(*h);
        }
    }
    out
}

impl DidOps {
    fn lc_of(&self, did: &str, v: &VersionId) -> Option<u64> {
        self.state
            .with_history(did, |h| h.get(v).map(|r| r.lc))
            .flatten()
    }

    /// A key this node holds under relationship `rel` in `doc` (current version `v` of `did`).
    fn own_signer(
        &self,
        did: &str,
        v: &VersionId,
        doc: &DidDocument,
        rel: Relationship,
    ) -> Result<Option<Signer>, OpsError> {
        for id in doc.relationship(rel) {
            // Operations and transactions are signed with Ed25519 keys only.
            if doc.key_for(id, rel).is_some() && self.keys.contains(id)? {
                let frag = id.rsplit_once('#').map(|(_, f)| f).unwrap_or_default();
                let lc = self
                    .lc_of(did, v)
                    .ok_or_else(|| OpsError::NotFound(did.to_owned()))?;
                return Ok(Some(Signer {
                    key_id: id.clone(),
                    kid: SignerKid::format(did, v, frag),
                    parent: (Hash32(v.0), lc),
                }));
            }
        }
        Ok(None)
    }

    /// Who signs a change of `did` whose current version is `(v, doc)`: a key of its own, else
    /// a key of a controller this node hosts.
    fn change_signer(
        &self,
        did: &str,
        v: &VersionId,
        doc: &DidDocument,
    ) -> Result<Signer, OpsError> {
        if let Some(s) = self.own_signer(did, v, doc, Relationship::CapabilityInvocation)? {
            return Ok(s);
        }
        for c in &doc.controller {
            if let Some((cv, cdoc)) = self.state.current(c) {
                if let Some(s) =
                    self.own_signer(c, &cv, &cdoc, Relationship::CapabilityInvocation)?
                {
                    return Ok(s);
                }
            }
        }
        Err(OpsError::NotHosted(did.to_owned()))
    }

    fn current(&self, did: &str) -> Result<(VersionId, DidDocument), OpsError> {
        if let Some(c) = self.state.current(did) {
            return Ok(c);
        }
        if self.state.with_history(did, |_| ()).is_some() {
            Err(OpsError::Deactivated(did.to_owned()))
        } else {
            Err(OpsError::NotFound(did.to_owned()))
        }
    }

    async fn submit(
        &self,
        cty: &str,
        payload: Vec<u8>,
        signer: Option<Signer>,
        inception: Option<ed25519_dalek::SigningKey>,
        extra: Vec<(TxId, u64)>,
    ) -> Result<TxId, OpsError> {
        let keys = self.keys.clone();
        let cty = cty.to_owned();
        let build: knoop_gossip::service::BuildFn = Box::new(move |heads| {
            let mut required = extra;
            if let Some(s) = &signer {
                required.push(s.parent);
            }
            let builder = TxBuilder::new(cty).prevs(merge_prevs(heads, &required));
            match (&signer, inception) {
                (Some(s), _) => keys
                    .with_key(&s.key_id, |k| builder.kid(s.kid.clone()).sign(k, payload))
                    .map_err(|e| TxError::Store(e.to_string()))?,
                (None, Some(k)) => builder.sign(&k, payload),
                (None, None) => Err(TxError::Unauthorized("no signer".into())),
            }
        });
        match self.log.publish(build).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(OpsError::Stopped),
        }
    }

    /// Creates a DID with a fresh key held here. Unless it is the node's own DID, it names the
    /// node's DID as its host (`KnoopHost`).
    pub async fn create(
        &self,
        services: &[ServiceSpec],
        controllers: &[String],
        host: Option<&str>,
        binding_key: Option<&ed25519_dalek::SigningKey>,
    ) -> Result<(String, VersionId), OpsError> {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let did = did_for_key(&key.verifying_key());
        let mut doc = DidDocument::new(&did);
        doc.add_ed25519("key-1", &key.verifying_key(), &SIGNING_RELATIONSHIPS);
        // A P-256 key for JOSE (ES256), the algorithm of the national guide's credential catalog.
        let es256 = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        doc.add_p256(ES256_FRAGMENT, es256.verifying_key(), &ES256_RELATIONSHIPS);
        doc.controller = controllers.to_vec();
        if let Some(web) = self.web_alias(&did) {
            doc.also_known_as.push(web);
        }
        if let Some(h) = host {
            doc.service.push(Service {
                id: format!("{did}#host"),
                type_: HOST_SERVICE_TYPE.into(),
                service_endpoint: h.into(),
            });
            // A tenant receives private transactions through its host's X25519 key
            // (specs/private-transactions.md §2): one trial decryption per node, not per tenant.
            if let Some((_, pk)) = self.held_key_agreement(h) {
                doc.add_x25519("ka-1", &pk);
            }
        }
        if let Some(peer) = binding_key {
            doc.service
                .push(sign_binding(&did, peer, Vec::new()).service(&did));
        }
        for s in services {
            doc.service.push(s.to_service(&did));
        }
        doc.validate(&did)
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        self.keys.put(&format!("{did}#key-1"), &key)?;
        let es256_id = format!("{did}#{ES256_FRAGMENT}");
        let mut secret: [u8; 32] = es256.to_bytes().into();
        let stored = self.keys.put_bytes(&es256_id, &secret);
        zeroize::Zeroize::zeroize(&mut secret);
        stored?;
        let payload = DidOp::Create { document: doc }.to_bytes();
        let id = self
            .submit(DID_OP_CONTENT_TYPE, payload, None, Some(key), Vec::new())
            .await
            .inspect_err(|_| {
                let _ = self.keys.delete(&format!("{did}#key-1"));
                let _ = self.keys.delete(&es256_id);
            })?;
        Ok((did, VersionId(id.0)))
    }

    /// The did:web id `did` has under the public base URL, if one is set and can carry one.
    pub fn web_alias(&self, did: &str) -> Option<String> {
        crate::identity::web_id::web_did_of(self.web_base.get()?, did)
    }

    /// Names the did:web id of the hosted DID `did` in its `alsoKnownAs` (one update, only
    /// when it is missing; `specs/did-web.md` §2).
    pub async fn ensure_web_alias(&self, did: &str) -> Result<(), OpsError> {
        let Some(web) = self.web_alias(did) else {
            return Ok(());
        };
        let (_, doc) = self.current(did)?;
        if doc.also_known_as.contains(&web) {
            return Ok(());
        }
        self.update(did, move |d| {
            d.also_known_as
                .retain(|a| !(a.starts_with("did:web:") && a.contains(":knoop:")));
            d.also_known_as.push(web);
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Applies `change` to the current document of `did` and publishes the update.
    pub async fn update(
        &self,
        did: &str,
        change: impl FnOnce(&mut DidDocument) -> Result<(), OpsError>,
    ) -> Result<VersionId, OpsError> {
        let (v, doc) = self.current(did)?;
        let mut next = doc.clone();
        change(&mut next)?;
        next.validate(did)
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        let op = DidOp::Update {
            previous: v,
            document: next,
        };
        self.submit_change(did, &v, &doc, op).await
    }

    /// Publishes `op`, which changes version `v` (document `doc`) of `did`, signed by a key
    /// that may change it, with `v` among its parents.
    async fn submit_change(
        &self,
        did: &str,
        v: &VersionId,
        doc: &DidDocument,
        op: DidOp,
    ) -> Result<VersionId, OpsError> {
        let signer = self.change_signer(did, v, doc)?;
        let lc = self.lc_of(did, v).unwrap_or(0);
        let id = self
            .submit(
                DID_OP_CONTENT_TYPE,
                op.to_bytes(),
                Some(signer),
                None,
                vec![(Hash32(v.0), lc)],
            )
            .await?;
        Ok(VersionId(id.0))
    }

    /// Ends `did`.
    pub async fn deactivate(&self, did: &str) -> Result<VersionId, OpsError> {
        let (v, doc) = self.current(did)?;
        let op = DidOp::Deactivate {
            did: did.to_owned(),
            previous: v,
        };
        let version = self.submit_change(did, &v, &doc, op).await?;
        for k in self.keys.ids(&format!("{did}#"))? {
            self.keys.delete(&k)?;
        }
        Ok(version)
    }

    /// The next `key-<n>` fragment never used in any version of `did` (a retired key's
    /// fragment is not reused, so a key reference names one key for the DID's whole life).
    fn next_fragment(&self, did: &str, doc: &DidDocument) -> String {
        let number = |id: &str| -> Option<u64> { id.rsplit_once("#key-")?.1.parse().ok() };
        let mut max = doc
            .verification_method
            .iter()
            .filter_map(|m| number(&m.id))
            .max()
            .unwrap_or(0);
        if let Some(m) = self.state.with_history(did, |h| {
            h.all()
                .iter()
                .filter_map(|r| r.document())
                .flat_map(|d| d.verification_method.iter().filter_map(|m| number(&m.id)))
                .max()
        }) {
            max = max.max(m.unwrap_or(0));
        }
        format!("key-{}", max + 1)
    }

    /// Generates a key and adds it under `rels`. Returns the fragment and the new version.
    pub async fn add_key(
        &self,
        did: &str,
        rels: &[Relationship],
    ) -> Result<(String, VersionId), OpsError> {
        if rels.contains(&Relationship::KeyAgreement) {
            return Err(OpsError::Invalid(
                "keyAgreement keys (X25519) are not generated here yet".into(),
            ));
        }
        let (_, doc) = self.current(did)?;
        let frag = self.next_fragment(did, &doc);
        let key_id = format!("{did}#{frag}");
        let pk = self.keys.generate(&key_id)?;
        let rels = rels.to_vec();
        let f = frag.clone();
        let res = self
            .update(did, move |d| {
                d.add_ed25519(&f, &pk, &rels);
                Ok(())
            })
            .await;
        match res {
            Ok(v) => Ok((frag, v)),
            Err(e) => {
                let _ = self.keys.delete(&key_id);
                Err(e)
            }
        }
    }

    /// Removes key `fragment` (and deletes its secret once the update is stored).
    pub async fn remove_key(&self, did: &str, fragment: &str) -> Result<VersionId, OpsError> {
        let id = format!("{did}#{fragment}");
        let idc = id.clone();
        let v = self
            .update(did, move |d| {
                if d.remove_method(&idc) {
                    Ok(())
                } else {
                    Err(OpsError::Invalid(format!(
                        "{idc} is not a key of the document"
                    )))
                }
            })
            .await?;
        self.keys.delete(&id)?;
        Ok(v)
    }

    /// Replaces key `fragment` with a fresh key under the same relationships, in one update.
    pub async fn rotate(&self, did: &str, fragment: &str) -> Result<(String, VersionId), OpsError> {
        let (_, doc) = self.current(did)?;
        let old = format!("{did}#{fragment}");
        if doc.method(&old).is_none() {
            return Err(OpsError::Invalid(format!(
                "{old} is not a key of the document"
            )));
        }
        let rels: Vec<Relationship> = Relationship::ALL
            .into_iter()
            .filter(|r| doc.relationship(*r).contains(&old))
            .collect();
        let frag = self.next_fragment(did, &doc);
        let new_id = format!("{did}#{frag}");
        let pk = self.keys.generate(&new_id)?;
        let (f, o) = (frag.clone(), old.clone());
        let res = self
            .update(did, move |d| {
                d.remove_method(&o);
                d.add_ed25519(&f, &pk, &rels);
                Ok(())
            })
            .await;
        match res {
            Ok(v) => {
                self.keys.delete(&old)?;
                Ok((frag, v))
            }
            Err(e) => {
                let _ = self.keys.delete(&new_id);
                Err(e)
            }
        }
    }

    /// The first `keyAgreement` key of `did`'s current document whose X25519 secret this node
    /// holds: `(keystore id, public key)`.
    pub fn held_key_agreement(&self, did: &str) -> Option<(String, [u8; 32])> {
        let (_, doc) = self.state.current(did)?;
        doc.key_agreement_keys()
            .into_iter()
            .find(|(id, _)| self.keys.contains(id).unwrap_or(false))
    }

    /// The P-256 key of `did` held here under relationship `rel`: (method id, key).
    fn held_es256(
        &self,
        did: &str,
        rel: Relationship,
    ) -> Result<Option<(String, p256::ecdsa::SigningKey)>, OpsError> {
        let (_, doc) = self.current(did)?;
        for id in doc.relationship(rel) {
            let is_p256 = matches!(
                doc.signing_key_for(id, rel),
                Some(knoop_did::document::PublicKey::P256(_))
            );
            if is_p256 && self.keys.contains(id)? {
                let key = self
                    .keys
                    .with_bytes(id, |b| p256::ecdsa::SigningKey::from_slice(b).ok())?;
                if let Some(k) = key {
                    return Ok(Some((id.clone(), k)));
                }
            }
        }
        Ok(None)
    }

    /// Runs `f` with the JOSE signing key of `did` under `rel`: its P-256 key (`ES256`) when it
    /// has one here, else its Ed25519 key (`EdDSA`). `f(verification method id, key)`.
    pub fn with_jose_key<T>(
        &self,
        did: &str,
        rel: Relationship,
        f: impl FnOnce(&str, &knoop_vc::jws::SigningKey) -> T,
    ) -> Result<T, OpsError> {
        if let Some((id, key)) = self.held_es256(did, rel)? {
            return Ok(f(&id, &knoop_vc::jws::SigningKey::P256(key)));
        }
        self.with_key_for(did, rel, |id, key| {
            f(id, &knoop_vc::jws::SigningKey::Ed25519(key.clone()))
        })
    }

    /// Makes sure the hosted `did` has a P-256 key (`ES256`) for authentication and assertions,
    /// held here, adding one in a DID update if not (DIDs made before knoop signed with ES256).
    pub async fn ensure_es256_key(&self, did: &str) -> Result<(), OpsError> {
        if self
            .held_es256(did, Relationship::AssertionMethod)?
            .is_some()
        {
            return Ok(());
        }
        let (_, doc) = self.current(did)?;
        let mut n = 1;
        while doc.method(&format!("{did}#es256-{n}")).is_some() {
            n += 1;
        }
        let frag = format!("es256-{n}");
        let id = format!("{did}#{frag}");
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let mut secret: [u8; 32] = key.to_bytes().into();
        let stored = self.keys.put_bytes(&id, &secret);
        zeroize::Zeroize::zeroize(&mut secret);
        stored?;
        let public = *key.verifying_key();
        let res = self
            .update(did, move |d| {
                d.add_p256(&frag, &public, &ES256_RELATIONSHIPS);
                Ok(())
            })
            .await;
        if res.is_err() {
            let _ = self.keys.delete(&id);
        }
        res.map(|_| ())
    }

    /// Makes sure `did` (the node's own DID) lists an X25519 `keyAgreement` key whose secret
    /// is held here, generating and publishing one if not.
    pub async fn ensure_key_agreement(&self, did: &str) -> Result<(), OpsError> {
        if self.held_key_agreement(did).is_some() {
            return Ok(());
        }
        let number = |id: &str| -> Option<u64> { id.rsplit_once("#ka-")?.1.parse().ok() };
        let used = self
            .state
            .with_history(did, |h| {
                h.all()
                    .iter()
                    .filter_map(|r| r.document())
                    .flat_map(|d| d.verification_method.iter().filter_map(|m| number(&m.id)))
                    .max()
            })
            .flatten()
            .unwrap_or(0);
        let frag = format!("ka-{}", used + 1);
        let id = format!("{did}#{frag}");
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
        self.keys.put_bytes(&id, &secret)?;
        zeroize::Zeroize::zeroize(&mut secret);
        let res = self
            .update(did, move |d| {
                d.add_x25519(&frag, public.as_bytes());
                Ok(())
            })
            .await;
        if res.is_err() {
            let _ = self.keys.delete(&id);
        }
        res.map(|_| ())
    }

    /// Makes sure `did`'s current document has exactly one service of `type_`, with
    /// `endpoint` (a DID update when it has none or another endpoint).
    pub async fn ensure_service(
        &self,
        did: &str,
        type_: &str,
        endpoint: &str,
    ) -> Result<(), OpsError> {
        let (_, doc) = self.current(did)?;
        let same: Vec<_> = doc.service.iter().filter(|s| s.type_ == type_).collect();
        if same.len() == 1 && same[0].service_endpoint == endpoint {
            return Ok(());
        }
        let service = ServiceSpec {
            id: None,
            type_: type_.to_owned(),
            endpoint: endpoint.into(),
        }
        .to_service(did);
        let t = type_.to_owned();
        self.update(did, move |d| {
            d.service.retain(|s| s.type_ != t);
            d.service.push(service);
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// The kid (with the current version) and keystore id of a held assertionMethod key of
    /// `did`, for signing something other than a transaction.
    pub fn assertion_kid(&self, did: &str) -> Result<(String, String), OpsError> {
        let (v, doc) = self.current(did)?;
        let s = self
            .own_signer(did, &v, &doc, Relationship::AssertionMethod)?
            .ok_or_else(|| OpsError::NotHosted(did.to_owned()))?;
        Ok((s.kid, s.key_id))
    }

    /// Signs and publishes content as `did` (with one of its assertionMethod keys held here).
    pub async fn publish_as(
        &self,
        did: &str,
        cty: &str,
        payload: Vec<u8>,
    ) -> Result<TxId, OpsError> {
        let (v, doc) = self.current(did)?;
        let signer = self
            .own_signer(did, &v, &doc, Relationship::AssertionMethod)?
            .ok_or_else(|| OpsError::NotHosted(did.to_owned()))?;
        self.submit(cty, payload, Some(signer), None, Vec::new())
            .await
    }

    /// Runs `f` with a held assertionMethod key of `did`: `f(verification method id, key)`.
    pub fn with_assertion_key<T>(
        &self,
        did: &str,
        f: impl FnOnce(&str, &ed25519_dalek::SigningKey) -> T,
    ) -> Result<T, OpsError> {
        self.with_key_for(did, Relationship::AssertionMethod, f)
    }

    /// Runs `f` with a held key of `did` under `rel`: `f(verification method id, key)`.
    pub fn with_key_for<T>(
        &self,
        did: &str,
        rel: Relationship,
        f: impl FnOnce(&str, &ed25519_dalek::SigningKey) -> T,
    ) -> Result<T, OpsError> {
        let (v, doc) = self.current(did)?;
        let signer = self
            .own_signer(did, &v, &doc, rel)?
            .ok_or_else(|| OpsError::NotHosted(did.to_owned()))?;
        let id = signer.key_id.clone();
        Ok(self.keys.with_key(&signer.key_id, |k| f(&id, k))?)
    }

    /// DIDs this node holds keys for, sorted.
    pub fn hosted(&self) -> Result<Vec<String>, OpsError> {
        let mut dids: Vec<String> = self
            .keys
            .ids("did:")?
            .into_iter()
            .filter_map(|id| id.split_once('#').map(|(d, _)| d.to_owned()))
            .collect();
        dids.dedup();
        Ok(dids)
    }
}
