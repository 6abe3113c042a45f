//! The W3C vc-di-eddsa known-answer vectors (vc/tests/fixtures/w3c-vc-di-eddsa/TestVectors):
//! canonical forms, hashes and signatures must match byte for byte (Ed25519 is
//! deterministic), the signed documents must verify, and tampered ones must not.
//! Every vector file is used; an unused one fails the test.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use knoop_did::document::{decode_multibase_key, PublicKey};
use knoop_vc::canon;
use knoop_vc::proof::{self, hash_data, ProofError};
use knoop_vc::{Contexts, Cryptosuite, ProofOptions};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const CITIZENSHIP_V4RC1: &str = "https://w3id.org/citizenship/v4rc1";

struct Vectors {
    dir: PathBuf,
    used: RefCell<BTreeSet<PathBuf>>,
}

impl Vectors {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/w3c-vc-di-eddsa/TestVectors");
        Self {
            dir,
            used: RefCell::new(BTreeSet::new()),
        }
    }
    fn text(&self, rel: &str) -> String {
        let p = self.dir.join(rel);
        self.used.borrow_mut().insert(p.clone());
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
    fn trimmed(&self, rel: &str) -> String {
        self.text(rel).trim().to_owned()
    }
    fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.text(rel)).unwrap()
    }
    fn obj(&self, rel: &str) -> Map<String, Value> {
        self.json(rel).as_object().unwrap().clone()
    }
    fn all_files(&self) -> BTreeSet<PathBuf> {
        fn walk(d: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.insert(p);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.dir, &mut out);
        out
    }
}

/// `privateKeyMultibase`: z + base58btc(multicodec ed25519-priv 0x1300 ‖ 32-byte seed).
fn signing_key(private_multibase: &str) -> SigningKey {
    let raw = bs58::decode(&private_multibase[1..]).into_vec().unwrap();
    assert_eq!(&raw[..2], &[0x80, 0x26], "ed25519-priv multicodec");
    SigningKey::from_bytes(&raw[2..].try_into().unwrap())
}

/// did:key resolution for the vectors: the fragment is the Multikey.
fn did_key(vm: &str) -> Option<VerifyingKey> {
    let (_, fragment) = vm.split_once('#')?;
    match decode_multibase_key(fragment).ok()? {
        PublicKey::Ed25519(k) => Some(k),
        _ => None,
    }
}

fn options_from(config: &Map<String, Value>) -> ProofOptions {
    let s = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut o = ProofOptions::new(
        Cryptosuite::from_name(&s("cryptosuite").unwrap()).unwrap(),
        s("verificationMethod").unwrap(),
    );
    o.proof_purpose = s("proofPurpose").unwrap();
    o.created = s("created");
    o.id = s("id");
    o.previous_proof = match config.get("previousProof") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        Some(other) => panic!("previousProof {other}"),
    };
    o
}

fn without_context(mut m: Map<String, Value>) -> Map<String, Value> {
    m.remove("@context");
    m
}

/// One suite's worked example: canonical forms, hashes, signature, signed document.
#[allow(clippy::too_many_arguments)]
fn known_answer(
    v: &Vectors,
    contexts: &Contexts,
    suite: Cryptosuite,
    unsigned: &str,
    dir: &str,
    tag: &str,
) -> usize {
    let key = signing_key(
        v.json("keyPair.json")["privateKeyMultibase"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        knoop_did::document::ed25519_multibase(&key.verifying_key()),
        v.json("keyPair.json")["publicKeyMultibase"]
    );
    let f = |name: &str| format!("{dir}/{name}{tag}");
    let unsigned = v.obj(unsigned);
    let config = v.obj(&f("proofConfig").replace(tag, &format!("{tag}.json")));
    let (canon_doc, canon_config) = match suite {
        Cryptosuite::EddsaJcs2022 => (
            canon::jcs(&Value::Object(unsigned.clone())).unwrap(),
            canon::jcs(&Value::Object(config.clone())).unwrap(),
        ),
        Cryptosuite::EddsaRdfc2022 => (
            canon::rdfc(&Value::Object(unsigned.clone()), contexts).unwrap(),
            canon::rdfc(&Value::Object(config.clone()), contexts).unwrap(),
        ),
    };
    let txt = |name: &str| format!("{}.txt", f(name));
    // JCS files have no trailing newline; N-Quads files end each line with one.
    assert_eq!(canon_doc.trim_end(), v.text(&txt("canonDoc")).trim_end());
    assert_eq!(
        canon_config.trim_end(),
        v.text(&txt("proofCanon")).trim_end()
    );
    let doc_hash = hex::encode(Sha256::digest(canon_doc.as_bytes()));
    let config_hash = hex::encode(Sha256::digest(canon_config.as_bytes()));
    assert_eq!(doc_hash, v.trimmed(&txt("docHash")));
    assert_eq!(config_hash, v.trimmed(&txt("proofHash")));
    let combined = hash_data(suite, &unsigned, &config, contexts).unwrap();
    assert_eq!(hex::encode(combined), v.trimmed(&txt("combinedHash")));

    // Signing with the vector's options gives the vector's signature and signed document.
    let options = options_from(&without_context(config.clone()));
    let signed = proof::sign(&Value::Object(unsigned.clone()), &options, &key, contexts).unwrap();
    let pv = signed["proof"]["proofValue"].as_str().unwrap();
    assert_eq!(pv, v.trimmed(&txt("sigBTC58")));
    let sig = bs58::decode(&pv[1..]).into_vec().unwrap();
    assert_eq!(hex::encode(sig), v.trimmed(&txt("sigHex")));
    let expected_signed = v.json(&format!("{}.json", f("signed")));
    assert_eq!(signed, expected_signed);

    // The vector's signed document verifies; tampering with it does not.
    let verified = proof::verify(&expected_signed, contexts, &did_key).unwrap();
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].cryptosuite, suite);
    assert_eq!(verified[0].proof_purpose, "assertionMethod");
    assert_tampering_fails(&expected_signed, contexts);
    8
}

fn assert_tampering_fails(signed: &Value, contexts: &Contexts) {
    let mut t = signed.clone();
    t["issuer"] = "https://vc.example/issuers/evil".into();
    assert!(matches!(
        proof::verify(&t, contexts, &did_key),
        Err(ProofError::SignatureMismatch(_))
    ));
    let mut t = signed.clone();
    t["proof"]["created"] = "2023-02-24T23:36:39Z".into();
    assert!(matches!(
        proof::verify(&t, contexts, &did_key),
        Err(ProofError::SignatureMismatch(_))
    ));
    let mut t = signed.clone();
    let pv = t["proof"]["proofValue"].as_str().unwrap().to_owned();
    let mut sig = bs58::decode(&pv[1..]).into_vec().unwrap();
    sig[10] ^= 1;
    t["proof"]["proofValue"] = format!("z{}", bs58::encode(sig).into_string()).into();
    assert!(matches!(
        proof::verify(&t, contexts, &did_key),
        Err(ProofError::SignatureMismatch(_))
    ));
    // A key that is not the signer's.
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(matches!(
        proof::verify(signed, contexts, &|_| Some(other)),
        Err(ProofError::SignatureMismatch(_))
    ));
    assert!(matches!(
        proof::verify(signed, contexts, &|_| None),
        Err(ProofError::KeyNotFound(_))
    ));
}

#[test]
fn w3c_vc_di_eddsa_vectors() {
    let v = Vectors::new();
    let contexts = Contexts::bundled()
        .with(
            CITIZENSHIP_V4RC1,
            include_str!("contexts/citizenship-v4rc1.jsonld"),
        )
        .unwrap();
    let mut checked = 0;
    checked += known_answer(
        &v,
        &contexts,
        Cryptosuite::EddsaJcs2022,
        "unsigned.json",
        "eddsa-jcs-2022",
        "JCS",
    );
    checked += known_answer(
        &v,
        &contexts,
        Cryptosuite::EddsaRdfc2022,
        "unsigned.json",
        "eddsa-rdfc-2022",
        "DataInt",
    );
    checked += known_answer(
        &v,
        &contexts,
        Cryptosuite::EddsaRdfc2022,
        "employmentAuth.json",
        "eddsa-rdfc-2022/employ",
        "DataInt",
    );
    checked += proof_sets_and_chains(&v, &contexts);
    checked += legacy_suite_is_refused(&v, &contexts);

    let unused: Vec<_> = v
        .all_files()
        .difference(&v.used.borrow())
        .cloned()
        .collect();
    assert!(unused.is_empty(), "vector files not used: {unused:#?}");
    println!("checked {checked} known answers");
}

/// Proof sets (two independent proofs) and chains (proofs over earlier proofs): each step,
/// made with the vector's keys and options, must equal the vector's document and verify.
fn proof_sets_and_chains(v: &Vectors, contexts: &Contexts) -> usize {
    let dir = "proof-set-chain";
    let keys = v.json(&format!("{dir}/multiKeyPairs.json"));
    let key = |n: usize| {
        let pair = &keys[format!("keyPair{n}")];
        let k = signing_key(pair["privateKeyMultibase"].as_str().unwrap());
        assert_eq!(
            knoop_did::document::ed25519_multibase(&k.verifying_key()),
            pair["publicKeyMultibase"]
        );
        k
    };
    let mut doc = v.json(&format!("{dir}/unsigned.json"));
    assert_eq!(doc, v.json("unsigned.json"));
    let steps = [
        (
            1,
            "proofSetConfig1",
            "proofSetConfigSigned1",
            "signedProofSet1",
        ),
        (
            2,
            "proofSetConfig2",
            "proofSetConfigSigned2",
            "signedProofSet2",
        ),
        (
            3,
            "proofChainConfig1",
            "proofChainConfigSigned1",
            "signedProofChain1",
        ),
        (
            4,
            "proofChainConfig2",
            "proofChainConfigSigned2",
            "signedProofChain2",
        ),
    ];
    let mut checked = 0;
    for (n, config, config_signed, signed) in steps {
        let options = options_from(&v.obj(&format!("{dir}/{config}.json")));
        let before = doc.clone();
        doc = proof::sign(&doc, &options, &key(n), contexts).unwrap();
        assert_eq!(doc, v.json(&format!("{dir}/{signed}.json")), "{signed}");
        let new_proof = match &doc["proof"] {
            Value::Array(a) => a.last().unwrap().clone(),
            p => p.clone(),
        };
        assert_eq!(new_proof, v.json(&format!("{dir}/{config_signed}.json")));
        let verified = proof::verify(&doc, contexts, &did_key).unwrap();
        assert_eq!(verified.len(), n);
        checked += 2;
        // The chain's temporary documents are what a chained proof signs: the document with
        // the proofs it names.
        if n >= 3 {
            let temp = v.json(&format!("{dir}/proofChainTempDoc{}.json", n - 2));
            let names_previous = temp["proof"].clone();
            let prev_ids: BTreeSet<_> = match &names_previous {
                Value::Array(a) => a.iter().map(|p| p["id"].to_string()).collect(),
                p => [p["id"].to_string()].into(),
            };
            let before_ids: BTreeSet<_> = before["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].to_string())
                .filter(|id| prev_ids.contains(id))
                .collect();
            assert_eq!(prev_ids, before_ids);
            checked += 1;
        }
    }
    // Dropping a proof a chain refers to breaks the chain.
    let mut broken = doc.clone();
    broken["proof"].as_array_mut().unwrap().remove(2);
    assert!(matches!(
        proof::verify(&broken, contexts, &did_key),
        Err(ProofError::PreviousProofNotFound(_))
    ));
    checked
}

/// Ed25519Signature2020 is not supported: its vector must be refused by proof type, not
/// mis-verified. Its canonical document is the same RDFC as eddsa-rdfc-2022's.
fn legacy_suite_is_refused(v: &Vectors, contexts: &Contexts) -> usize {
    let d = "Ed25519Signature2020";
    let signed = v.json(&format!("{d}/signedEdSig.json"));
    assert!(matches!(
        proof::verify(&signed, contexts, &did_key),
        Err(ProofError::WrongProofType(t)) if t == "Ed25519Signature2020"
    ));
    let mut unsigned = signed.as_object().unwrap().clone();
    unsigned.remove("proof");
    let canon_doc = canon::rdfc(&Value::Object(unsigned), contexts).unwrap();
    assert_eq!(canon_doc, v.text(&format!("{d}/canonDocEdSig.txt")));
    assert_eq!(
        hex::encode(Sha256::digest(canon_doc.as_bytes())),
        v.trimmed(&format!("{d}/docHashEdSig.txt"))
    );
    let config = v.json(&format!("{d}/proofConfigEdSig.json"));
    let canon_config = canon::rdfc(&config, contexts).unwrap();
    assert_eq!(canon_config, v.text(&format!("{d}/proofCanonEdSig.txt")));
    assert_eq!(
        hex::encode(Sha256::digest(canon_config.as_bytes())),
        v.trimmed(&format!("{d}/proofHashEdSig.txt"))
    );
    // Ed25519Signature2020 signs hash(config) ‖ hash(doc) too; the signature matches.
    let key = signing_key(
        v.json("keyPair.json")["privateKeyMultibase"]
            .as_str()
            .unwrap(),
    );
    let mut combined = Sha256::digest(canon_config.as_bytes()).to_vec();
    combined.extend_from_slice(&Sha256::digest(canon_doc.as_bytes()));
    assert_eq!(
        hex::encode(&combined),
        v.trimmed(&format!("{d}/combinedHashEdSig.txt"))
    );
    use ed25519_dalek::Signer;
    let sig = key.sign(&combined).to_bytes();
    assert_eq!(hex::encode(sig), v.trimmed(&format!("{d}/sigHexEdSig.txt")));
    assert_eq!(
        format!("z{}", bs58::encode(sig).into_string()),
        v.trimmed(&format!("{d}/sigBTC58EdSig.txt"))
    );
    7
}

#[test]
fn our_credentials_round_trip_both_suites() {
    let contexts = Contexts::bundled();
    let key = SigningKey::from_bytes(&[42; 32]);
    let vm = format!(
        "did:key:{0}#{0}",
        knoop_did::document::ed25519_multibase(&key.verifying_key())
    );
    let credential = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": "did:example:issuer",
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject", "name": "Huisartsenpraktijk Zuid"}
    });
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let mut options = ProofOptions::new(suite, vm.clone());
        options.created = Some("2026-01-01T00:00:00Z".into());
        let signed = proof::sign(&credential, &options, &key, &contexts).unwrap();
        let verified = proof::verify(&signed, &contexts, &did_key).unwrap();
        assert_eq!(verified[0].verification_method, vm);
        assert_eq!(verified[0].created.as_deref(), Some("2026-01-01T00:00:00Z"));
        let mut t = signed.clone();
        t["credentialSubject"]["name"] = "Someone else".into();
        assert!(matches!(
            proof::verify(&t, &contexts, &did_key),
            Err(ProofError::SignatureMismatch(_))
        ));
    }
    // Errors name what failed.
    let mut options = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm.clone());
    options.created = Some("yesterday".into());
    assert!(matches!(
        proof::sign(&credential, &options, &key, &contexts),
        Err(ProofError::BadDate {
            field: "created",
            ..
        })
    ));
    assert!(matches!(
        proof::verify(&credential, &contexts, &did_key),
        Err(ProofError::NoProof)
    ));
    let options = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm.clone());
    let mut signed = proof::sign(&credential, &options, &key, &contexts).unwrap();
    signed["proof"]["cryptosuite"] = "eddsa-2022".into();
    assert!(matches!(
        proof::verify(&signed, &contexts, &did_key),
        Err(ProofError::UnknownCryptosuite(s)) if s == "eddsa-2022"
    ));
    // RDFC needs every context: an unknown one is a canonicalisation error, never a fetch.
    let mut unknown = credential.clone();
    unknown["@context"]
        .as_array_mut()
        .unwrap()
        .push("https://example.org/never-bundled/v1".into());
    let options = ProofOptions::new(Cryptosuite::EddsaRdfc2022, vm.clone());
    assert!(matches!(
        proof::sign(&unknown, &options, &key, &contexts),
        Err(ProofError::Canonicalization(_))
    ));
    // eddsa-jcs-2022: the proof's @context must prefix the document's.
    let options = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm);
    let mut signed = proof::sign(&credential, &options, &key, &contexts).unwrap();
    signed["@context"] = serde_json::json!(["https://www.w3.org/2018/credentials/v1"]);
    assert!(matches!(
        proof::verify(&signed, &contexts, &did_key),
        Err(ProofError::ContextMismatch)
    ));
}
