//! Authority rules over a small in-memory transaction graph.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::SigningKey;

use super::*;
use crate::document::Service;

/// A toy DAG: id -> (lc, parents). Ids are counters.
#[derive(Default)]
struct Dag {
    nodes: HashMap<VersionId, (u64, Vec<VersionId>)>,
    next: u8,
}

impl Dag {
    fn add(&mut self, prevs: &[VersionId]) -> (VersionId, u64) {
        self.next += 1;
        let id = VersionId([self.next; 32]);
        let lc = prevs.iter().map(|p| self.nodes[p].0 + 1).max().unwrap_or(0);
        self.nodes.insert(id, (lc, prevs.to_vec()));
        (id, lc)
    }
}

impl CausalOracle for Dag {
    fn ancestors(
        &self,
        from: &[VersionId],
        targets: &[(VersionId, u64)],
    ) -> Result<Vec<bool>, String> {
        let mut seen = HashSet::new();
        let mut stack: Vec<VersionId> = from.to_vec();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.nodes[&n].1.iter().copied());
            }
        }
        Ok(targets.iter().map(|(t, _)| seen.contains(t)).collect())
    }
}

struct World {
    dag: Dag,
    reg: Registry,
}

const ALL: [Relationship; 3] = [
    Relationship::Authentication,
    Relationship::AssertionMethod,
    Relationship::CapabilityInvocation,
];

impl World {
    fn new() -> Self {
        World {
            dag: Dag::default(),
            reg: Registry::default(),
        }
    }

    /// Runs a transaction through both phases, like the log does.
    fn submit(
        &mut self,
        prevs: &[VersionId],
        cty: &str,
        payload: &[u8],
        signer: &SigningKey,
        kid: Option<String>,
    ) -> Result<VersionId, AuthError> {
        let (id, lc) = self.dag.add(prevs);
        let key = signer.verifying_key();
        let f = TxFacts {
            id,
            lc,
            sigt: 1_000 + lc,
            prevs,
            cty,
            payload: Some(payload),
            jwk: if kid.is_none() { Some(key) } else { None },
            kid: kid.as_deref(),
        };
        let expect = self
            .reg
            .signing_key(&f)?
            .ok_or_else(|| unauth("deferred"))?;
        if expect != key {
            return Err(unauth("signature would not verify"));
        }
        self.reg.admit(&f, &key, &self.dag)?;
        self.reg.commit();
        Ok(id)
    }

    fn create(&mut self, k: &SigningKey, prevs: &[VersionId]) -> (String, VersionId) {
        let did = did_for_key(&k.verifying_key());
        let mut d = DidDocument::new(&did);
        d.add_ed25519("key-1", &k.verifying_key(), &ALL);
        let op = DidOp::Create { document: d };
        let v = self
            .submit(prevs, DID_OP_CONTENT_TYPE, &op.to_bytes(), k, None)
            .unwrap();
        (did, v)
    }

    fn doc(&self, did: &str, v: &VersionId) -> DidDocument {
        self.reg
            .history(did)
            .unwrap()
            .get(v)
            .unwrap()
            .document()
            .unwrap()
            .clone()
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        _did: &str,
        previous: VersionId,
        doc: DidDocument,
        signer: &SigningKey,
        signer_did: &str,
        signer_version: VersionId,
        frag: &str,
        extra_prevs: &[VersionId],
    ) -> Result<VersionId, AuthError> {
        let op = DidOp::Update {
            previous,
            document: doc,
        };
        let mut prevs = vec![previous, signer_version];
        prevs.extend_from_slice(extra_prevs);
        prevs.sort();
        prevs.dedup();
        self.submit(
            &prevs,
            DID_OP_CONTENT_TYPE,
            &op.to_bytes(),
            signer,
            Some(SignerKid::format(signer_did, &signer_version, frag)),
        )
    }

    fn publish(
        &mut self,
        did: &str,
        v: VersionId,
        k: &SigningKey,
        frag: &str,
        extra: &[VersionId],
    ) -> Result<VersionId, AuthError> {
        let mut prevs = vec![v];
        prevs.extend_from_slice(extra);
        prevs.sort();
        prevs.dedup();
        self.submit(
            &prevs,
            "application/example",
            b"hello",
            k,
            Some(SignerKid::format(did, &v, frag)),
        )
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

#[test]
fn create_needs_the_inception_key_and_embedded_keys_sign_nothing_else() {
    let mut w = World::new();
    let (did, v1) = w.create(&key(1), &[]);
    assert!(did.starts_with("did:knoop:"));
    assert_eq!(w.reg.owner(&v1), Some(did.as_str()));
    // A document claiming another key's DID.
    let mut d = DidDocument::new(&did);
    d.add_ed25519("key-1", &key(2).verifying_key(), &ALL);
    let op = DidOp::Create { document: d };
    let e = w
        .submit(&[], DID_OP_CONTENT_TYPE, &op.to_bytes(), &key(2), None)
        .unwrap_err();
    assert!(e.to_string().contains("does not derive"), "{e}");
    // Embedded key on an ordinary transaction.
    let e = w
        .submit(&[], "application/example", b"x", &key(1), None)
        .unwrap_err();
    assert!(e.to_string().contains("only a DID create"), "{e}");
    // A second create of the same DID after the first is in the causal past.
    let mut d = DidDocument::new(&did);
    d.add_ed25519("key-9", &key(1).verifying_key(), &ALL);
    let e = w
        .submit(
            &[v1],
            DID_OP_CONTENT_TYPE,
            &DidOp::Create { document: d }.to_bytes(),
            &key(1),
            None,
        )
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
}

#[test]
fn rotation_retires_the_old_key_for_everything_after_it() {
    let mut w = World::new();
    let (did, v1) = w.create(&key(1), &[]);
    let t1 = w.publish(&did, v1, &key(1), "key-1", &[]).unwrap();
    // Rotate key-1 -> key-2.
    let mut d = w.doc(&did, &v1);
    d.remove_method(&format!("{did}#key-1"));
    d.add_ed25519("key-2", &key(2).verifying_key(), &ALL);
    let v2 = w
        .update(&did, v1, d, &key(1), &did, v1, "key-1", &[t1])
        .unwrap();
    // The new key signs under v2.
    w.publish(&did, v2, &key(2), "key-2", &[]).unwrap();
    // The old key, naming the old version but with the rotation in its past: refused.
    let e = w.publish(&did, v1, &key(1), "key-1", &[v2]).unwrap_err();
    assert!(e.to_string().contains("not an assertionMethod key"), "{e}");
    // The old key, concurrent with the rotation (v2 not in its past): accepted.
    w.publish(&did, v1, &key(1), "key-1", &[t1]).unwrap();
    // A key that was never in the document.
    let e = w.publish(&did, v2, &key(7), "key-2", &[]).unwrap_err();
    assert!(e.to_string().contains("would not verify"), "{e}");
    let e = w.publish(&did, v2, &key(7), "key-7", &[]).unwrap_err();
    assert!(e.to_string().contains("not a key of that version"), "{e}");
    // An update signed by the retired key is refused too.
    let d = w.doc(&did, &v2);
    let e = w
        .update(&did, v2, d, &key(1), &did, v1, "key-1", &[])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("signed under the version it replaces"),
        "{e}"
    );
}

#[test]
fn concurrent_updates_settle_the_same_way_and_the_loser_is_kept() {
    let mut w = World::new();
    let (did, v1) = w.create(&key(1), &[]);
    let mut a = w.doc(&did, &v1);
    a.service.push(Service {
        id: format!("{did}#fhir"),
        type_: "FHIR".into(),
        service_endpoint: "https://a.example/fhir".into(),
    });
    let mut b = w.doc(&did, &v1);
    b.service.push(Service {
        id: format!("{did}#fhir"),
        type_: "FHIR".into(),
        service_endpoint: "https://b.example/fhir".into(),
    });
    // Two updates of v1, neither seeing the other; b has a higher clock.
    let va = w
        .update(&did, v1, a, &key(1), &did, v1, "key-1", &[])
        .unwrap();
    let filler = w.publish(&did, v1, &key(1), "key-1", &[]).unwrap();
    let vb = w
        .update(&did, v1, b, &key(1), &did, v1, "key-1", &[filler])
        .unwrap();
    let h = w.reg.history(&did).unwrap();
    let chain: Vec<VersionId> = h.chain().iter().map(|r| r.version).collect();
    assert_eq!(chain, vec![v1, vb]);
    assert_eq!(
        h.superseded().iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![va]
    );
    // Updating the loser once both are known is stale.
    let d = w.doc(&did, &va);
    let e = w
        .update(&did, va, d, &key(1), &did, va, "key-1", &[vb])
        .unwrap_err();
    assert!(e.to_string().contains("stale update"), "{e}");
}

#[test]
fn controllers_update_and_deactivation_ends_everything() {
    let mut w = World::new();
    let (admin, va) = w.create(&key(1), &[]);
    let (org, vo) = w.create(&key(2), &[va]);
    // The org names admin as controller.
    let mut d = w.doc(&org, &vo);
    d.controller.push(admin.clone());
    let vo2 = w
        .update(&org, vo, d, &key(2), &org, vo, "key-1", &[])
        .unwrap();
    // admin adds a service to org with admin's key.
    let mut d = w.doc(&org, &vo2);
    d.service.push(Service {
        id: format!("{org}#host"),
        type_: "KnoopHost".into(),
        service_endpoint: admin.clone().into(),
    });
    let vo3 = w
        .update(&org, vo2, d.clone(), &key(1), &admin, va, "key-1", &[])
        .unwrap();
    // A stranger cannot.
    let (_, vx) = w.create(&key(3), &[]);
    let stranger = did_for_key(&key(3).verifying_key());
    let e = w
        .update(&org, vo3, d, &key(3), &stranger, vx, "key-1", &[])
        .unwrap_err();
    assert!(e.to_string().contains("not a controller"), "{e}");
    // Deactivate org; afterwards nothing is signed by it.
    let op = DidOp::Deactivate {
        did: org.clone(),
        previous: vo3,
    };
    let vd = w
        .submit(
            &[vo3],
            DID_OP_CONTENT_TYPE,
            &op.to_bytes(),
            &key(2),
            Some(SignerKid::format(&org, &vo3, "key-1")),
        )
        .unwrap();
    assert!(w
        .reg
        .history(&org)
        .unwrap()
        .chain()
        .last()
        .unwrap()
        .op
        .is_deactivate());
    let e = w.publish(&org, vo3, &key(2), "key-1", &[vd]).unwrap_err();
    assert!(e.to_string().contains("deactivated"), "{e}");
}

#[test]
fn a_kid_must_name_a_parent_and_rollback_forgets() {
    let mut w = World::new();
    let (did, v1) = w.create(&key(1), &[]);
    let (other, _) = w.dag.add(&[]);
    let e = w
        .submit(
            &[other],
            "application/example",
            b"x",
            &key(1),
            Some(SignerKid::format(&did, &v1, "key-1")),
        )
        .unwrap_err();
    assert!(e
        .to_string()
        .contains("must be one of the transaction's parents"));
    for bad in [
        "did:knoop:x#key-1".to_owned(),
        format!("did:web:x?versionId={v1}#key-1"),
        format!("{did}?versionId={v1}"),
        "garbage".to_owned(),
    ] {
        assert!(
            w.submit(
                &[v1],
                "application/example",
                b"x",
                &key(1),
                Some(bad.clone())
            )
            .is_err(),
            "{bad}"
        );
    }
    // Admitted but not committed, then rolled back.
    let k = key(4);
    let did4 = did_for_key(&k.verifying_key());
    let mut d = DidDocument::new(&did4);
    d.add_ed25519("key-1", &k.verifying_key(), &ALL);
    let payload = DidOp::Create { document: d }.to_bytes();
    let (id, lc) = w.dag.add(&[]);
    let f = TxFacts {
        id,
        lc,
        sigt: 1,
        prevs: &[],
        cty: DID_OP_CONTENT_TYPE,
        payload: Some(&payload),
        jwk: Some(k.verifying_key()),
        kid: None,
    };
    w.reg.admit(&f, &k.verifying_key(), &w.dag).unwrap();
    assert!(w.reg.history(&did4).is_some());
    w.reg.rollback();
    assert!(w.reg.history(&did4).is_none());
    assert!(w.reg.owner(&id).is_none());
}
