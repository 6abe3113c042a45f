//! The node's view of every `did:knoop` DID: the registry from `knoop-did`, filled from the log,
//! acting as the log's [`Authorizer`] and answering resolution and endpoint lookups.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use knoop_did::document::DidDocument;
use knoop_did::knoop::history::DidHistory;
use knoop_did::knoop::registry::{AuthError, SignerKid};
use knoop_did::knoop::services::{find_endpoint, EndpointHit, LookupError};
use knoop_did::knoop::time::{from_rfc3339, to_rfc3339};
use knoop_did::knoop::{CausalOracle, DidOp, OpRecord, Registry, TxFacts, VersionId};
use knoop_did::knoop::{DID_OP_CONTENT_TYPE, METHOD};
use knoop_did::resolution::{DocumentMetadata, ErrorCode, ResolutionResult, SupersededVersion};
use knoop_did::url::DidUrl;
use knoop_gossip::{Authorizer, CausalView, KeyLookup, Store, Transaction, TxError, TxId};

/// Most transactions one causal search may visit before the transaction is refused.
const MAX_CAUSAL_VISITS: usize = 200_000;

/// Shared DID state.
#[derive(Default)]
pub struct DidState {
    reg: RwLock<Registry>,
    /// DIDs some version of which has a `KnoopNode` service (few: one per node).
    node_dids: RwLock<HashSet<String>>,
}

/// Whether an operation's document binds a node.
fn binds_node(rec: &OpRecord) -> bool {
    rec.document().is_some_and(|d| {
        d.service_of_type(knoop_did::binding::NODE_SERVICE_TYPE)
            .is_some()
    })
}

/// Public validation of private and localisation transactions (specs/private-transactions.md
/// §3.5, specs/consent-localisation.md §6.2), the same on every node: the content travels with
/// the transaction and is well-formed (`valid`), and the signer is a node DID (a version that
/// carries a `KnoopNode` binding), which names the node to ask.
fn check_node_content(
    f: &TxFacts,
    reg: &Registry,
    valid: impl Fn(&[u8]) -> bool,
) -> Result<(), TxError> {
    let payload = f.payload.ok_or(TxError::Malformed(
        "private and localisation transactions carry their content",
    ))?;
    if !valid(payload) {
        return Err(TxError::Malformed(
            "malformed private or localisation content",
        ));
    }
    let kid = f
        .kid
        .and_then(|k| SignerKid::parse(k).ok())
        .ok_or_else(|| TxError::Unauthorized("this content is signed by a node DID".into()))?;
    let by_node = reg
        .history(&kid.did)
        .and_then(|h| h.get(&kid.version))
        .is_some_and(binds_node);
    if !by_node {
        return Err(TxError::Unauthorized(format!(
            "private and localisation transactions are signed by a node DID; {} is not one",
            kid.did
        )));
    }
    Ok(())
}

fn vid(id: &TxId) -> VersionId {
    VersionId(id.0)
}

fn auth_err(e: AuthError) -> TxError {
    TxError::Unauthorized(e.to_string())
}

/// Runs `f` over the registry's view of `tx`.
fn with_facts<T>(
    tx: &Transaction,
    f: impl FnOnce(&TxFacts) -> Result<T, TxError>,
) -> Result<T, TxError> {
    let h = tx.header();
    let prevs: Vec<VersionId> = h.prevs.iter().map(vid).collect();
    let jwk = match &h.jwk {
        Some(j) => Some(j.to_key()?),
        None => None,
    };
    f(&TxFacts {
        id: vid(&tx.id()),
        lc: h.lc,
        sigt: h.sigt,
        prevs: &prevs,
        cty: &h.cty,
        payload: tx.payload(),
        jwk,
        kid: h.kid.as_deref(),
    })
}

/// Ancestry answered by walking the log backwards from the transaction's parents.
struct ViewOracle<'a>(&'a dyn CausalView);

impl CausalOracle for ViewOracle<'_> {
    fn ancestors(
        &self,
        from: &[VersionId],
        targets: &[(VersionId, u64)],
    ) -> Result<Vec<bool>, String> {
        let min_lc = targets.iter().map(|(_, lc)| *lc).min().unwrap_or(0);
        let wanted: HashSet<VersionId> = targets.iter().map(|(v, _)| *v).collect();
        let mut found: HashSet<VersionId> = HashSet::new();
        let mut seen: HashSet<VersionId> = HashSet::new();
        let mut stack: Vec<VersionId> = from.to_vec();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if seen.len() > MAX_CAUSAL_VISITS {
                return Err(format!(
                    "more than {MAX_CAUSAL_VISITS} transactions between the signer's version \
                     and this transaction"
                ));
            }
            if wanted.contains(&n) {
                found.insert(n);
                if found.len() == wanted.len() {
                    break;
                }
            }
            let Some((lc, prevs)) = self
                .0
                .node(&knoop_gossip::Hash32(n.0))
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            if lc <= min_lc {
                continue;
            }
            stack.extend(prevs.iter().map(vid));
        }
        Ok(targets.iter().map(|(v, _)| found.contains(v)).collect())
    }
}

impl Authorizer for DidState {
    fn signer_key(&self, tx: &Transaction) -> Result<KeyLookup, TxError> {
        with_facts(tx, |f| {
            let reg = self
                .reg
                .read()
                .map_err(|_| TxError::Store("did registry lock".into()))?;
            match reg.signing_key(f).map_err(auth_err)? {
                Some(k) => Ok(KeyLookup::Key(k)),
                None => Ok(KeyLookup::Deferred),
            }
        })
    }

    fn admit(
        &self,
        tx: &Transaction,
        key: &ed25519_dalek::VerifyingKey,
        view: &dyn CausalView,
    ) -> Result<(), TxError> {
        with_facts(tx, |f| self.admit_facts(tx, f, key, view))
    }

    fn committed(&self) {
        if let Ok(mut r) = self.reg.write() {
            r.commit();
        }
    }

    fn rolled_back(&self) {
        if let Ok(mut r) = self.reg.write() {
            r.rollback();
        }
    }
}

impl DidState {
    fn admit_facts(
        &self,
        tx: &Transaction,
        f: &TxFacts,
        key: &ed25519_dalek::VerifyingKey,
        view: &dyn CausalView,
    ) -> Result<(), TxError> {
        let mut reg = self
            .reg
            .write()
            .map_err(|_| TxError::Store("did registry lock".into()))?;
        if f.cty == knoop_privacy::PRIVATE_CONTENT_TYPE {
            check_node_content(f, &reg, |p| knoop_privacy::Descriptor::from_cbor(p).is_ok())?;
        } else if f.cty == knoop_privacy::locator::LOC_CONTENT_TYPE {
            check_node_content(f, &reg, |p| {
                knoop_privacy::locator::decode_content(p).is_ok()
            })?;
        }
        reg.admit(f, key, &ViewOracle(view)).map_err(|e| {
            tracing::debug!(tx = ?tx.id(), error = %e, "transaction not authorised");
            auth_err(e)
        })?;
        if f.cty == DID_OP_CONTENT_TYPE {
            if let Some(did) = reg.owner(&f.id) {
                let binds = reg
                    .history(did)
                    .and_then(|hist| hist.get(&f.id))
                    .is_some_and(binds_node);
                if binds {
                    if let Ok(mut n) = self.node_dids.write() {
                        n.insert(did.to_owned());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why the DIDs could not be loaded from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("reading the store: {0}")]
    Store(#[from] knoop_gossip::StoreError),
    #[error("reading a stored transaction: {0}")]
    Tx(#[from] TxError),
    #[error("DID operation {id} is stored without its content")]
    MissingContent { id: TxId },
    #[error("DID operation {id}: {reason}")]
    BadOperation { id: TxId, reason: String },
}

/// A DID operation read back from the store.
fn stored_op<S: Store + ?Sized>(store: &S, id: &TxId) -> Result<Option<OpRecord>, LoadError> {
    let Some((t, payload)) = knoop_gossip::log::read_tx(store, id)? else {
        return Ok(None);
    };
    let Some(payload) = payload else {
        return Err(LoadError::MissingContent { id: *id });
    };
    let tx = Transaction::parse(&t.envelope, None)?;
    let op = DidOp::parse(&payload).map_err(|e| LoadError::BadOperation {
        id: *id,
        reason: e.to_string(),
    })?;
    Ok(Some(OpRecord {
        version: vid(id),
        lc: t.lc,
        sigt: t.sigt,
        op,
        signer: tx.header().kid.clone().unwrap_or_else(|| "jwk".into()),
    }))
}

impl DidState {
    /// Fills the registry from the DID operations in the store (they were checked on the way
    /// in).
    pub fn load<S: Store + ?Sized>(store: &S) -> Result<Self, LoadError> {
        let mut reg = Registry::default();
        let mut node_dids = HashSet::new();
        let mut after = 0;
        loop {
            let page = store.list_by_type(DID_OP_CONTENT_TYPE, after, 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, id) in page {
                if let Some(rec) = stored_op(store, &id)? {
                    if binds_node(&rec) {
                        node_dids.insert(rec.op.did().to_owned());
                    }
                    reg.insert(rec);
                }
            }
        }
        Ok(DidState {
            reg: RwLock::new(reg),
            node_dids: RwLock::new(node_dids),
        })
    }

    /// DIDs known.
    pub fn len(&self) -> usize {
        self.reg.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether no DID is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// DID operations held.
    pub fn op_count(&self) -> usize {
        self.reg.read().map(|r| r.op_count()).unwrap_or(0)
    }

    /// Runs `f` over the history of `did`.
    pub fn with_history<T>(&self, did: &str, f: impl FnOnce(&DidHistory) -> T) -> Option<T> {
        let reg = self.reg.read().ok()?;
        reg.history(did).map(f)
    }

    /// The current version of `did`: `(version, lc, document)`; `None` if unknown or
    /// deactivated.
    pub fn current(&self, did: &str) -> Option<(VersionId, DidDocument)> {
        self.with_history(did, |h| {
            let chain = h.chain();
            let last = chain.last()?;
            Some((last.version, last.document()?.clone()))
        })
        .flatten()
    }

    /// Resolves a `did:knoop` DID URL (with `versionId` or `versionTime`, if given).
    pub fn resolve(&self, url: &DidUrl) -> ResolutionResult {
        let did = url.did.as_str();
        if url.did.method() != METHOD {
            return ResolutionResult::error(ErrorCode::MethodNotSupported, "not did:knoop");
        }
        let msid = url.did.method_specific_id();
        if bs58::decode(msid).into_vec().map(|b| b.len()) != Ok(32) {
            return ResolutionResult::error(
                ErrorCode::InvalidDid,
                "a did:knoop id is the base58btc of 32 bytes",
            );
        }
        let Ok(reg) = self.reg.read() else {
            return ResolutionResult::error(ErrorCode::InternalError, "registry lock");
        };
        let Some(h) = reg.history(did) else {
            return ResolutionResult::error(ErrorCode::NotFound, format!("{did} is not known"));
        };
        let chain = h.chain();
        let rec = if let Some(v) = url.param("versionId") {
            match VersionId::from_hex(v).and_then(|v| h.get(&v)) {
                Some(r) => r,
                None => {
                    return ResolutionResult::error(
                        ErrorCode::NotFound,
                        format!("{did} has no version {v}"),
                    )
                }
            }
        } else if let Some(t) = url.param("versionTime") {
            let Some(ms) = from_rfc3339(&t.replace("%3A", ":")) else {
                return ResolutionResult::error(
                    ErrorCode::InvalidOptions,
                    "versionTime must be an RFC 3339 UTC time",
                );
            };
            match h.at_time(ms) {
                Some(r) => r,
                None => {
                    return ResolutionResult::error(
                        ErrorCode::NotFound,
                        format!("{did} did not exist at {t}"),
                    )
                }
            }
        } else {
            match chain.last() {
                Some(r) => *r,
                None => return ResolutionResult::error(ErrorCode::NotFound, "no create"),
            }
        };
        let on_chain: HashMap<VersionId, usize> = chain
            .iter()
            .enumerate()
            .map(|(i, r)| (r.version, i))
            .collect();
        let mut meta = DocumentMetadata {
            created: chain.first().map(|r| to_rfc3339(r.sigt)),
            updated: Some(to_rfc3339(rec.sigt)),
            version_id: Some(rec.version.to_hex()),
            ..Default::default()
        };
        match on_chain.get(&rec.version) {
            Some(i) => {
                meta.next_version_id = chain.get(i + 1).map(|r| r.version.to_hex());
            }
            None => meta.superseded_by = superseded_by(h, &on_chain, &chain, rec),
        }
        meta.superseded = h
            .superseded()
            .into_iter()
            .map(|r| SupersededVersion {
                version_id: r.version.to_hex(),
                previous: r.op.previous().map(|p| p.to_hex()),
                operation: r.op.name(),
                signer: r.signer.clone(),
                signed: to_rfc3339(r.sigt),
            })
            .collect();
        let (doc, deactivated) = match rec.document() {
            Some(d) => (d.clone(), false),
            None => {
                // A deactivation: show the last document before it.
                let prev = rec
                    .op
                    .previous()
                    .and_then(|p| h.get(&p))
                    .and_then(|r| r.document())
                    .cloned();
                match prev {
                    Some(d) => (d, true),
                    None => {
                        return ResolutionResult::error(
                            ErrorCode::InternalError,
                            "orphan deactivation",
                        )
                    }
                }
            }
        };
        let value = serde_json::to_value(&doc).unwrap_or_default();
        let mut res = ResolutionResult::ok(value, meta);
        if deactivated {
            // Not an error (DID Core §7.1.3): the last document, marked deactivated.
            res.did_document_metadata.deactivated = Some(true);
        }
        res
    }

    /// The endpoint of type `type_` for `did`, following references (current documents only).
    pub fn endpoint(&self, did: &str, type_: &str) -> Result<EndpointHit, LookupError> {
        let resolve = |d: &str| self.current(d).map(|(_, doc)| doc);
        find_endpoint(&resolve, did, type_)
    }

    /// The DID whose current document binds `peer_id` (a verified `KnoopNode` service).
    pub fn did_of_peer(&self, peer_id: &str) -> Option<String> {
        let reg = self.reg.read().ok()?;
        let candidates: Vec<String> = self.node_dids.read().ok()?.iter().cloned().collect();
        for did in &candidates {
            let Some(h) = reg.history(did) else { continue };
            let chain = h.chain();
            let Some(doc) = chain.last().and_then(|r| r.document()) else {
                continue;
            };
            if let Some(b) = knoop_did::binding::binding_in(doc) {
                if b.peer_id == peer_id {
                    return Some(did.clone());
                }
            }
        }
        None
    }
}

/// For a version off the winning chain: the chain version that won at the fork.
fn superseded_by(
    h: &DidHistory,
    on_chain: &HashMap<VersionId, usize>,
    chain: &[&OpRecord],
    rec: &OpRecord,
) -> Option<String> {
    let mut cur = rec;
    loop {
        let prev = cur.op.previous()?;
        if let Some(i) = on_chain.get(&prev) {
            return chain.get(i + 1).map(|r| r.version.to_hex());
        }
        cur = h.get(&prev)?;
    }
}

/// The DID that signed `tx`: its `kid` without version query and fragment.
pub fn signer_did(tx: &Transaction) -> Option<String> {
    let kid = tx.header().kid.as_deref()?;
    Some(kid.split(['?', '#']).next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use ed25519_dalek::SigningKey;
    use knoop_did::document::{DidDocument, Relationship};
    use knoop_did::knoop::{did_for_key, SignerKid};
    use knoop_gossip::{Log, LogConfig, MemStore, Source, TxBuilder};

    const RELS: [Relationship; 3] = [
        Relationship::Authentication,
        Relationship::AssertionMethod,
        Relationship::CapabilityInvocation,
    ];

    fn create(k: &SigningKey) -> Transaction {
        let did = did_for_key(&k.verifying_key());
        let mut doc = DidDocument::new(&did);
        doc.add_ed25519("key-1", &k.verifying_key(), &RELS);
        TxBuilder::new(DID_OP_CONTENT_TYPE)
            .sign(k, DidOp::Create { document: doc }.to_bytes())
            .unwrap()
    }

    fn signed_by(k: &SigningKey, root: &Transaction, prevs: &[&Transaction]) -> Transaction {
        let did = did_for_key(&k.verifying_key());
        TxBuilder::new("text/plain")
            .prevs([(root.id(), root.header().lc)])
            .prevs(prevs.iter().map(|t| (t.id(), t.header().lc)))
            .kid(SignerKid::format(&did, &VersionId(root.id().0), "key-1"))
            .sign(k, b"x".to_vec())
            .unwrap()
    }

    fn log() -> (Log<MemStore>, Arc<DidState>) {
        let state = Arc::new(DidState::default());
        let log = Log::open(
            Arc::new(MemStore::default()),
            state.clone(),
            LogConfig::default(),
        )
        .unwrap();
        (log, state)
    }

    #[test]
    fn a_did_arriving_after_what_it_signed_releases_it() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let root = create(&k);
        let t1 = signed_by(&k, &root, &[]);
        let t2 = signed_by(&k, &root, &[&t1]);
        let (mut log, state) = log();
        // From a peer, the signed transactions first: held (their DID version is a parent).
        let r = log.ingest(vec![t2.clone(), t1.clone()], Source::Peer);
        assert!(r
            .results
            .iter()
            .all(|x| matches!(x, Err(TxError::MissingParents(_)))));
        assert_eq!(r.missing, vec![root.id()]);
        assert_eq!(log.pending_len(), 2);
        // The create arrives: all three land, verified against the DID's key.
        let r = log.ingest(vec![root.clone()], Source::Peer);
        assert_eq!(r.stored.len(), 3, "{:?}", r.results);
        assert_eq!(state.op_count(), 1);
        // In one batch, in any order, works too.
        let k2 = SigningKey::from_bytes(&[4; 32]);
        let root2 = create(&k2);
        let u = signed_by(&k2, &root2, &[]);
        let r = log.ingest(vec![u, root2], Source::Local);
        assert!(r.results.iter().all(|x| x.is_ok()), "{:?}", r.results);
    }

    #[test]
    fn a_forged_signature_on_a_deferred_key_is_refused() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let root = create(&k);
        let good = signed_by(&k, &root, &[]);
        // Same header and content, another key's signature.
        let other = SigningKey::from_bytes(&[6; 32]);
        let forged_sig = TxBuilder::new("text/plain")
            .sign(&other, b"x".to_vec())
            .unwrap();
        let env = format!(
            "{}.{}",
            good.envelope().rsplit_once('.').unwrap().0,
            forged_sig.envelope().rsplit_once('.').unwrap().1
        );
        let forged = Transaction::parse(&env, Some(b"x".to_vec())).unwrap();
        let (mut log, _) = log();
        log.ingest(vec![forged.clone()], Source::Peer);
        let r = log.ingest(vec![root], Source::Peer);
        assert_eq!(r.stored.len(), 1, "only the create lands");
        assert!(log.get(&forged.id()).unwrap().is_none());
    }

    #[test]
    fn loading_from_the_store_restores_every_version() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let root = create(&k);
        let store = Arc::new(MemStore::default());
        let state = Arc::new(DidState::default());
        let mut log = Log::open(store.clone(), state.clone(), LogConfig::default()).unwrap();
        assert!(log.ingest(vec![root.clone()], Source::Local).results[0].is_ok());
        let did = did_for_key(&k.verifying_key());
        let again = DidState::load(store.as_ref()).unwrap();
        assert_eq!(again.current(&did), state.current(&did));
        assert!(again.current(&did).is_some());
    }
}
