//! Interoperability: credentials signed here with `eddsa-rdfc-2022` verify with ssi's own
//! Data Integrity verifier (resolving did:key offline), and the W3C vector verifies there too.

use ed25519_dalek::SigningKey;
use knoop_vc::proof;
use knoop_vc::{Contexts, Cryptosuite, ProofOptions};
use ssi::claims::data_integrity::AnyDataIntegrity;
use ssi::claims::vc::AnyJsonCredential;
use ssi::claims::VerificationParameters;
use ssi::dids::{DIDKey, DIDResolver};

fn ssi_verifies(doc: &serde_json::Value) -> bool {
    let vc: AnyDataIntegrity<AnyJsonCredential> = serde_json::from_value(doc.clone()).unwrap();
    let params = VerificationParameters::from_resolver(DIDKey.into_vm_resolver());
    futures::executor::block_on(vc.verify(&params))
        .expect("verification ran")
        .is_ok()
}

#[test]
fn ssi_verifies_our_rdfc_proofs() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let credential = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": format!("did:key:{mb}"),
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:subject"}
    });
    let mut options = ProofOptions::new(Cryptosuite::EddsaRdfc2022, format!("did:key:{mb}#{mb}"));
    options.created = Some("2026-01-01T00:00:00Z".into());
    let signed = proof::sign(&credential, &options, &key, &Contexts::bundled()).unwrap();
    assert!(ssi_verifies(&signed));
    let mut tampered = signed.clone();
    tampered["validFrom"] = "2026-01-02T00:00:00Z".into();
    assert!(!ssi_verifies(&tampered));

    let vector: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/w3c-vc-di-eddsa/TestVectors/eddsa-rdfc-2022/signedDataInt.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(ssi_verifies(&vector));
}
