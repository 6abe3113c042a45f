//! Interoperability with ssi, both ways: credentials signed here with `eddsa-rdfc-2022` verify
//! with ssi's own Data Integrity verifier (resolving did:key offline), the W3C vector verifies
//! there too, and credentials ssi issues pass knoop's full verification.

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

/// A world where one did:key issuer exists and is trusted.
struct OneIssuer {
    vm: String,
    key: ed25519_dalek::VerifyingKey,
}

impl knoop_vc::verify::VerifierEnv for OneIssuer {
    fn issuer_key_at(&self, vm: &str, _: i64) -> Result<knoop_vc::jws::PublicJwk, String> {
        (vm == self.vm)
            .then_some(knoop_vc::jws::PublicJwk::Ed25519(self.key))
            .ok_or_else(|| format!("unknown {vm}"))
    }
    fn revoked(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn status_list(&self, _: &str) -> knoop_vc::verify::StatusLookup {
        knoop_vc::verify::StatusLookup::Unavailable("none here".into())
    }
    fn trusted(&self, _: &str, _: &knoop_vc::types::Claims) -> Result<(), String> {
        Ok(())
    }
    fn now_ms(&self) -> i64 {
        1_800_000_000_000
    }
}

/// Signs `credential` with ssi's own `eddsa-rdfc-2022` suite as the did:key of `key`.
pub fn ssi_signs(credential: serde_json::Value, key: &SigningKey) -> serde_json::Value {
    use ssi::claims::data_integrity::suites::EdDsaRdfc2022;
    use ssi::claims::data_integrity::{CryptographicSuite, ProofOptions as SsiOptions};
    use ssi::verification_methods::SingleSecretSigner;
    let jwk = ssi::jwk::JWK::from(ssi::jwk::Params::OKP(ssi::jwk::OctetParams {
        curve: "Ed25519".into(),
        public_key: ssi::jwk::Base64urlUInt(key.verifying_key().to_bytes().to_vec()),
        private_key: Some(ssi::jwk::Base64urlUInt(key.to_bytes().to_vec())),
    }));
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    // The verification method as a reference (an IRI), the way a proof names it.
    let vm = serde_json::from_value(serde_json::json!(format!("did:key:{mb}#{mb}"))).unwrap();
    let unsecured: ssi::claims::vc::v2::JsonCredential =
        serde_json::from_value(credential).unwrap();
    let signer = SingleSecretSigner::new(jwk);
    let signed = futures::executor::block_on(EdDsaRdfc2022.sign(
        unsecured,
        DIDKey.into_vm_resolver(),
        signer,
        SsiOptions::from_method(vm),
    ))
    .unwrap();
    serde_json::to_value(&signed).unwrap()
}

#[test]
fn credentials_issued_by_ssi_verify_here() {
    let key = SigningKey::from_bytes(&[10; 32]);
    let mb = knoop_did::document::ed25519_multibase(&key.verifying_key());
    let issuer = format!("did:key:{mb}");
    let signed = ssi_signs(
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
            "id": "urn:uuid:7f0d2c4e-1111-4000-8000-000000000001",
            "type": ["VerifiableCredential", "ExampleDegreeCredential"],
            "issuer": issuer,
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:graduate", "degree": {"type": "ExampleBachelorDegree", "name": "Bachelor of Science"}}
        }),
        &key,
    );
    assert_eq!(signed["proof"]["cryptosuite"], "eddsa-rdfc-2022");
    let world = OneIssuer {
        vm: format!("{issuer}#{mb}"),
        key: key.verifying_key(),
    };
    let contexts = knoop_vc::types::knoop_contexts();
    let v = knoop_vc::verify::verify_credential(&signed, &world, &contexts, true).unwrap();
    assert_eq!(v.issuer, issuer);
    assert_eq!(v.claims.type_name(), "ExampleDegreeCredential");
    let mut tampered = signed.clone();
    tampered["credentialSubject"]["degree"]["name"] = "Doctor of Science".into();
    let e = knoop_vc::verify::verify_credential(&tampered, &world, &contexts, true).unwrap_err();
    assert_eq!(e.code(), "bad_proof");
}
