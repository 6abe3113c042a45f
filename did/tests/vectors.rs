//! Executable check of the did:knoop vectors in `specs/vectors/did.json` (spec:
//! `specs/did-knoop.md`): identifier derivation, and a scenario of real transactions (create,
//! publish, concurrent updates, rotation, refusals, deactivation) replayed through the registry.
//!
//! Regenerate after an intended change with
//! `KNOOP_REGEN_VECTORS=1 cargo test -p knoop-did --test vectors`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use knoop_did::document::{ed25519_multibase, DidDocument, Relationship, Service};
use knoop_did::knoop::{
    did_for_key, CausalOracle, DidOp, Registry, SignerKid, TxFacts, VersionId, DID_OP_CONTENT_TYPE,
};
use knoop_gossip::{Transaction, TxBuilder};
use serde::{Deserialize, Serialize};

const FILE: &str = "did.json";

#[derive(Serialize, Deserialize)]
struct Vectors {
    identifiers: Vec<IdVector>,
    scenario: Scenario,
}

#[derive(Serialize, Deserialize)]
struct IdVector {
    secret_key: String,
    public_key_multibase: String,
    did: String,
}

#[derive(Serialize, Deserialize)]
struct Scenario {
    description: String,
    steps: Vec<Step>,
    did: String,
    chain: Vec<String>,
    superseded: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Step {
    note: String,
    envelope: String,
    /// Standard base64.
    payload: String,
    /// `accepted`, or `refused: <part of the reason>`.
    expect: String,
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("specs")
        .join("vectors")
        .join(FILE)
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

const RELS: [Relationship; 3] = [
    Relationship::Authentication,
    Relationship::AssertionMethod,
    Relationship::CapabilityInvocation,
];

/// The graph of accepted transactions.
#[derive(Default)]
struct Dag(HashMap<VersionId, (u64, Vec<VersionId>)>);

impl CausalOracle for Dag {
    fn ancestors(
        &self,
        from: &[VersionId],
        targets: &[(VersionId, u64)],
    ) -> Result<Vec<bool>, String> {
        let mut seen = HashSet::new();
        let mut stack = from.to_vec();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                if let Some((_, p)) = self.0.get(&n) {
                    stack.extend(p.iter().copied());
                }
            }
        }
        Ok(targets.iter().map(|(t, _)| seen.contains(t)).collect())
    }
}

/// Runs one transaction through both phases, as the node's log does.
fn apply(reg: &mut Registry, dag: &mut Dag, tx: &Transaction) -> Result<(), String> {
    let h = tx.header();
    let prevs: Vec<VersionId> = h.prevs.iter().map(|p| VersionId(p.0)).collect();
    let jwk = match &h.jwk {
        Some(j) => Some(j.to_key().map_err(|e| e.to_string())?),
        None => None,
    };
    let f = TxFacts {
        id: VersionId(tx.id().0),
        lc: h.lc,
        sigt: h.sigt,
        prevs: &prevs,
        cty: &h.cty,
        payload: tx.payload(),
        jwk,
        kid: h.kid.as_deref(),
    };
    let key = reg
        .signing_key(&f)
        .map_err(|e| e.to_string())?
        .ok_or("signing version unknown")?;
    tx.verify_signature(&key).map_err(|e| e.to_string())?;
    reg.admit(&f, &key, dag).map_err(|e| e.to_string())?;
    reg.commit();
    dag.0.insert(f.id, (h.lc, prevs));
    Ok(())
}

fn generate() -> Vectors {
    let identifiers = (1..=3u8)
        .map(|n| {
            let k = key(n);
            IdVector {
                secret_key: hex::encode(k.to_bytes()),
                public_key_multibase: ed25519_multibase(&k.verifying_key()),
                did: did_for_key(&k.verifying_key()),
            }
        })
        .collect();

    let mut reg = Registry::default();
    let mut dag = Dag::default();
    let mut steps = Vec::new();
    let mut sigt = 1_767_225_600_000u64; // 2026-01-01T00:00:00Z
    let mut push = |reg: &mut Registry, dag: &mut Dag, note: &str, tx: Transaction| {
        let expect = match apply(reg, dag, &tx) {
            Ok(()) => "accepted".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        steps.push(Step {
            note: note.into(),
            envelope: tx.envelope().to_owned(),
            payload: B64.encode(tx.payload().unwrap_or_default()),
            expect,
        });
        tx
    };
    let mut next = || {
        sigt += 1000;
        sigt
    };
    let k1 = key(1);
    let did = did_for_key(&k1.verifying_key());
    let mut doc = DidDocument::new(&did);
    doc.add_ed25519("key-1", &k1.verifying_key(), &RELS);
    let create = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sigt(next())
        .sign(
            &k1,
            DidOp::Create {
                document: doc.clone(),
            }
            .to_bytes(),
        )
        .unwrap();
    let create = push(
        &mut reg,
        &mut dag,
        "create, signed with the embedded inception key",
        create,
    );
    let v1 = VersionId(create.id().0);
    let p = |t: &Transaction| (t.id(), t.header().lc);
    let kid1 = SignerKid::format(&did, &v1, "key-1");

    let note = TxBuilder::new("application/example")
        .sigt(next())
        .prevs([p(&create)])
        .kid(kid1.clone())
        .sign(&k1, b"a note".to_vec())
        .unwrap();
    let note = push(
        &mut reg,
        &mut dag,
        "content signed by the DID (assertionMethod key-1)",
        note,
    );

    let mut doc_a = doc.clone();
    doc_a.service.push(Service {
        id: format!("{did}#fhir"),
        type_: "FHIR".into(),
        service_endpoint: "https://a.example/fhir".into(),
    });
    let upd_a = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sigt(next())
        .prevs([p(&create)])
        .kid(kid1.clone())
        .sign(
            &k1,
            DidOp::Update {
                previous: v1,
                document: doc_a,
            }
            .to_bytes(),
        )
        .unwrap();
    let upd_a = push(&mut reg, &mut dag, "update A of version 1 (lc 1)", upd_a);

    let mut doc_b = doc.clone();
    doc_b.service.push(Service {
        id: format!("{did}#fhir"),
        type_: "FHIR".into(),
        service_endpoint: "https://b.example/fhir".into(),
    });
    let k2 = key(2);
    doc_b.remove_method(&format!("{did}#key-1"));
    doc_b.add_ed25519("key-2", &k2.verifying_key(), &RELS);
    let upd_b = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sigt(next())
        .prevs([p(&create), p(&note)])
        .kid(kid1.clone())
        .sign(
            &k1,
            DidOp::Update {
                previous: v1,
                document: doc_b,
            }
            .to_bytes(),
        )
        .unwrap();
    let upd_b = push(
        &mut reg,
        &mut dag,
        "update B of version 1, concurrent with A, higher clock (lc 2): wins; rotates key-1 -> key-2",
        upd_b,
    );
    let vb = VersionId(upd_b.id().0);

    let stale = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sigt(next())
        .prevs([p(&upd_a), p(&upd_b)])
        .kid(SignerKid::format(&did, &VersionId(upd_a.id().0), "key-1"))
        .sign(
            &k1,
            DidOp::Update {
                previous: VersionId(upd_a.id().0),
                document: doc.clone(),
            }
            .to_bytes(),
        )
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "update of the losing version A by a signer who saw B: stale",
        stale,
    );

    let retired = TxBuilder::new("application/example")
        .sigt(next())
        .prevs([p(&create), p(&upd_b)])
        .kid(kid1.clone())
        .sign(&k1, b"signed with a retired key".to_vec())
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "key-1 after the rotation it has seen: refused",
        retired,
    );

    let concurrent = TxBuilder::new("application/example")
        .sigt(next())
        .prevs([p(&create), p(&note)])
        .kid(kid1.clone())
        .sign(&k1, b"concurrent with the rotation".to_vec())
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "key-1 concurrent with the rotation (B not in its past): accepted",
        concurrent,
    );

    let kid2 = SignerKid::format(&did, &vb, "key-2");
    let stranger = TxBuilder::new("application/example")
        .sigt(next())
        .prevs([p(&upd_b)])
        .kid(kid2.clone())
        .sign(&key(3), b"wrong key".to_vec())
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "a never-authorised key under key-2's name: bad signature",
        stranger,
    );

    let jwk_content = TxBuilder::new("application/example")
        .sigt(next())
        .sign(&key(3), b"embedded key".to_vec())
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "an embedded key on anything but a create: refused",
        jwk_content,
    );

    let deact = TxBuilder::new(DID_OP_CONTENT_TYPE)
        .sigt(next())
        .prevs([p(&upd_b)])
        .kid(kid2.clone())
        .sign(
            &k2,
            DidOp::Deactivate {
                did: did.clone(),
                previous: vb,
            }
            .to_bytes(),
        )
        .unwrap();
    let deact = push(
        &mut reg,
        &mut dag,
        "deactivate, signed with key-2 under version B",
        deact,
    );

    let after = TxBuilder::new("application/example")
        .sigt(next())
        .prevs([p(&upd_b), p(&deact)])
        .kid(kid2)
        .sign(&k2, b"after the end".to_vec())
        .unwrap();
    push(
        &mut reg,
        &mut dag,
        "content after the deactivation: refused",
        after,
    );

    let h = reg.history(&did).unwrap();
    Vectors {
        identifiers,
        scenario: Scenario {
            description: "Steps are applied in order to an empty registry; each is accepted or \
                          refused (the reason contains the given text)."
                .into(),
            did: did.clone(),
            chain: h.chain().iter().map(|r| r.version.to_hex()).collect(),
            superseded: h.superseded().iter().map(|r| r.version.to_hex()).collect(),
            steps,
        },
    }
}

#[test]
fn did_vectors() {
    if std::env::var("KNOOP_REGEN_VECTORS").as_deref() == Ok("1") {
        let v = generate();
        std::fs::write(path(), serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
        eprintln!("regenerated specs/vectors/{FILE}");
    }
    let text = std::fs::read_to_string(path()).expect("specs/vectors/did.json");
    let v: Vectors = serde_json::from_str(&text).expect("did.json schema");

    for id in &v.identifiers {
        let mut sk = [0u8; 32];
        hex::decode_to_slice(&id.secret_key, &mut sk).unwrap();
        let pk = SigningKey::from_bytes(&sk).verifying_key();
        assert_eq!(ed25519_multibase(&pk), id.public_key_multibase);
        assert_eq!(did_for_key(&pk), id.did);
    }

    let mut reg = Registry::default();
    let mut dag = Dag::default();
    for s in &v.scenario.steps {
        let payload = B64.decode(&s.payload).unwrap();
        let tx = Transaction::parse(&s.envelope, Some(payload)).expect(&s.note);
        let got = apply(&mut reg, &mut dag, &tx);
        match (s.expect.strip_prefix("refused: "), got) {
            (None, Ok(())) => assert_eq!(s.expect, "accepted", "{}", s.note),
            (Some(reason), Err(e)) => {
                assert!(e.contains(reason), "{}: got {e:?}, want {reason:?}", s.note)
            }
            (want, got) => panic!("{}: want {want:?}, got {got:?}", s.note),
        }
    }
    let h = reg.history(&v.scenario.did).unwrap();
    let chain: Vec<String> = h.chain().iter().map(|r| r.version.to_hex()).collect();
    let superseded: Vec<String> = h.superseded().iter().map(|r| r.version.to_hex()).collect();
    assert_eq!(chain, v.scenario.chain);
    assert_eq!(superseded, v.scenario.superseded);
    assert!(h.chain().last().unwrap().op.is_deactivate());
    assert_eq!(v.scenario.chain.len(), 3, "create, update B, deactivate");
    assert_eq!(v.scenario.superseded.len(), 1, "update A");
}
