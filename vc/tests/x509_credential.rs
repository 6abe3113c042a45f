//! The national guide's `X509Credential` (credential-X509Credential): a VC 1.1 JWT issued by a
//! `did:x509` whose chain comes in the `x5c` header, over a throw-away chain shaped like the
//! Dutch UZI server certificates (rcgen). It verifies with the leaf's key; a claim the DID's
//! policies do not carry, a time outside the certificate, a chain of another CA, a signature by
//! another key, and an `x5c` beside a DID of another method are refused.

use base64::prelude::{Engine, BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use knoop_vc::jws::{PublicJwk, SigningKey};
use knoop_vc::types::{knoop_contexts, Claims};
use knoop_vc::verify::{verify_credential, StatusLookup, VerifierEnv};
use p256::pkcs8::DecodePrivateKey;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use serde_json::{json, Map, Value};
use sha2::Digest;

const UZI: &str = "2.16.528.1.1007.99.2110-1-900025039-S-90000382-00.000-00000000";
const HOLDER: &str = "did:web:zorg.example";

struct Chain {
    x5c: Vec<String>,
    root_fp: String,
    leaf: SigningKey,
}

fn chain() -> Chain {
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root = ca("Test UZI root CA").self_signed(&root_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Zorg Oost");
    leaf.distinguished_name
        .push(DnType::LocalityName, "Amsterdam");
    leaf.subject_alt_names
        .push(SanType::OtherName((vec![2, 5, 5, 5], UZI.into())));
    leaf.not_before = rcgen::date_time_ymd(2026, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2028, 1, 1);
    let leaf = leaf.signed_by(&leaf_key, &root, &root_key).unwrap();
    let signing =
        p256::ecdsa::SigningKey::from_pkcs8_der(&leaf_key.serialize_der()).expect("P-256");
    Chain {
        x5c: vec![
            BASE64_STANDARD.encode(leaf.der()),
            BASE64_STANDARD.encode(root.der()),
        ],
        root_fp: BASE64_URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(root.der())),
        leaf: SigningKey::P256(signing),
    }
}

fn did(c: &Chain) -> String {
    format!(
        "did:x509:0:sha256:{}::san:otherName:{UZI}::subject:O:Zorg%20Oost:L:Amsterdam",
        c.root_fp
    )
}

fn jwt(c: &Chain, key: &SigningKey, issuer: &str, subject: Value, issued: &str) -> Value {
    let mut header = Map::new();
    header.insert("kid".into(), format!("{issuer}#0").into());
    header.insert("typ".into(), "JWT".into());
    header.insert("x5c".into(), json!(c.x5c));
    let claims = json!({
        "iss": issuer, "sub": HOLDER, "jti": "urn:uuid:5f0e4c4e-0000-4000-8000-000000000001",
        "vc": {
            "@context": ["https://www.w3.org/2018/credentials/v1", "https://nuts.nl/credentials/v1"],
            "type": ["VerifiableCredential", "X509Credential"],
            "issuer": issuer,
            "issuanceDate": issued,
            "credentialSubject": subject,
        },
    });
    Value::String(key.sign_compact(header, claims.to_string().as_bytes()))
}

/// Trusts the issuers of one CA, by the fingerprint prefix of their DIDs.
struct Trusting(String);

impl VerifierEnv for Trusting {
    fn issuer_key_at(&self, vm: &str, _: i64) -> Result<PublicJwk, String> {
        Err(format!("{vm}: only did:x509 here"))
    }
    fn revoked(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn status_list(&self, _: &str) -> StatusLookup {
        StatusLookup::NotChecked
    }
    fn trusted(&self, issuer: &str, _: &Claims) -> Result<(), String> {
        issuer
            .starts_with(&format!("{}::", self.0))
            .then_some(())
            .ok_or_else(|| "another CA".into())
    }
    fn now_ms(&self) -> i64 {
        1_790_000_000_000
    }
}

fn code(c: &Value, env: &Trusting) -> &'static str {
    match verify_credential(c, env, &knoop_contexts(), true) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn uzi_x509_credentials_verify_and_refuse_what_the_certificate_does_not_say() {
    let c = chain();
    let issuer = did(&c);
    let env = Trusting(format!("did:x509:0:sha256:{}", c.root_fp));
    let subject = json!({"id": HOLDER, "subject": {"O": "Zorg Oost", "L": "Amsterdam"},
                         "san": {"otherName": UZI}});
    let good = jwt(
        &c,
        &c.leaf,
        &issuer,
        subject.clone(),
        "2026-06-01T00:00:00Z",
    );
    let v = verify_credential(&good, &env, &knoop_contexts(), true).unwrap();
    assert_eq!(v.issuer, issuer);
    assert_eq!(v.credential["credentialSubject"]["san"]["otherName"], UZI);

    // A claim the DID's policies do not carry, or carry otherwise.
    let mut more = subject.clone();
    more["subject"]["OU"] = "Cardiologie".into();
    assert_eq!(
        code(
            &jwt(&c, &c.leaf, &issuer, more, "2026-06-01T00:00:00Z"),
            &env
        ),
        "schema"
    );
    let mut other_ura = subject.clone();
    other_ura["san"]["otherName"] = UZI.replace("90000382", "90000999").into();
    assert_eq!(
        code(
            &jwt(&c, &c.leaf, &issuer, other_ura, "2026-06-01T00:00:00Z"),
            &env
        ),
        "schema"
    );
    // Issued before the certificate.
    assert_eq!(
        code(
            &jwt(
                &c,
                &c.leaf,
                &issuer,
                subject.clone(),
                "2025-06-01T00:00:00Z"
            ),
            &env
        ),
        "schema"
    );
    // Signed by another key in the DID's name.
    let forged = jwt(
        &c,
        &SigningKey::generate_p256(),
        &issuer,
        subject.clone(),
        "2026-06-01T00:00:00Z",
    );
    assert_ne!(code(&forged, &env), "ok");
    // Another CA is not trusted; a DID whose policies the leaf does not meet does not resolve.
    let other = chain();
    assert_eq!(
        code(
            &good,
            &Trusting(format!("did:x509:0:sha256:{}", other.root_fp))
        ),
        "untrusted_issuer"
    );
    let wrong = format!("did:x509:0:sha256:{}::subject:O:Zorg%20West", c.root_fp);
    assert_ne!(
        code(
            &jwt(
                &c,
                &c.leaf,
                &wrong,
                json!({"id": HOLDER}),
                "2026-06-01T00:00:00Z"
            ),
            &env
        ),
        "ok"
    );
    // x5c is only read for a did:x509 issuer.
    let mut header = Map::new();
    header.insert("kid".into(), "did:web:evil.example#0".into());
    header.insert("x5c".into(), json!(c.x5c));
    let smuggled = Value::String(c.leaf.sign_compact(
        header,
        json!({"iss": "did:web:evil.example", "vc": {"@context": ["https://www.w3.org/2018/credentials/v1"],
               "type": ["VerifiableCredential"], "issuanceDate": "2026-06-01T00:00:00Z",
               "credentialSubject": {"id": HOLDER}}}).to_string().as_bytes(),
    ));
    assert_eq!(code(&smuggled, &env), "malformed");
}
