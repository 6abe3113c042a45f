//! Full verification of credentials: each way a credential can be wrong fails with its own
//! code, through both cryptosuites and JOSE; Bitstring Status Lists; JOSE interop with ssi.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::SigningKey;
use knoop_vc::jose;
use knoop_vc::jws::PublicJwk;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::status::encode_list;
use knoop_vc::types::{knoop_contexts, unsigned, CareOrganization, Claims, HealthcareProfessional};
use knoop_vc::verify::{verify_credential, StatusLookup, VerifierEnv};
use serde_json::Value;

const RA: &str = "did:knoop:registry";
const HOSPITAL: &str = "did:knoop:hospital";
const JAN_2026: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;

/// A world with one key per issuer, valid from `from` until `until` (a rotation).
struct World {
    keys: HashMap<String, (PublicJwk, i64, i64)>,
    revoked: HashSet<String>,
    trusted: HashSet<String>,
    /// Status list credentials by URL, as if fetched.
    lists: HashMap<String, Value>,
    now: i64,
}

impl VerifierEnv for World {
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String> {
        let (k, from, until) = self.keys.get(vm).ok_or("unknown key")?;
        if at_ms < *from || at_ms >= *until {
            return Err(format!("{vm} was not an assertionMethod key at that time"));
        }
        Ok(k.clone())
    }
    fn revoked(&self, _issuer: &str, id: &str) -> Option<String> {
        self.revoked
            .contains(id)
            .then(|| "revoked by issuer".into())
    }
    fn status_list(&self, url: &str) -> StatusLookup {
        match self.lists.get(url) {
            Some(v) => StatusLookup::Fetched(v.clone()),
            None => StatusLookup::Unavailable("HTTP 404".into()),
        }
    }
    fn trusted(&self, issuer: &str, _claims: &Claims) -> Result<(), String> {
        if self.trusted.contains(issuer) {
            Ok(())
        } else {
            Err(format!("{issuer} is not trusted"))
        }
    }
    fn now_ms(&self) -> i64 {
        self.now
    }
}

fn world() -> World {
    let mut keys = HashMap::new();
    keys.insert(
        format!("{RA}#key-1"),
        (
            PublicJwk::Ed25519(SigningKey::from_bytes(&[1; 32]).verifying_key()),
            0,
            JAN_2026 + 10 * DAY,
        ),
    );
    keys.insert(
        format!("{RA}#key-2"),
        (
            PublicJwk::Ed25519(SigningKey::from_bytes(&[2; 32]).verifying_key()),
            JAN_2026 + 10 * DAY,
            i64::MAX,
        ),
    );
    World {
        keys,
        revoked: HashSet::new(),
        trusted: [RA.to_owned()].into(),
        lists: HashMap::new(),
        now: JAN_2026 + 20 * DAY,
    }
}

fn org_claims() -> Claims {
    Claims::CareOrganization(CareOrganization {
        id: HOSPITAL.into(),
        legal_name: "Zuyderland Medisch Centrum".into(),
        city: "Heerlen".into(),
        organization_type: "hospital".into(),
        ura: "87654321".into(),
    })
}

fn issue(suite: Cryptosuite, key: u8, created_day: i64, until: Option<&str>) -> Value {
    let vc = unsigned(
        "urn:uuid:0b2a6b5e-0000-4000-8000-000000000001",
        RA,
        &org_claims(),
        "2026-01-01T00:00:00Z",
        until,
    );
    let mut opts = ProofOptions::new(suite, format!("{RA}#key-{key}"));
    let created = JAN_2026 + created_day * DAY;
    opts.created = Some(format!(
        "2026-01-{:02}T00:00:00Z",
        1 + (created - JAN_2026) / DAY
    ));
    sign(
        &vc,
        &opts,
        &SigningKey::from_bytes(&[key; 32]),
        &knoop_contexts(),
    )
    .unwrap()
}

fn code(doc: &Value, w: &World) -> &'static str {
    match verify_credential(doc, w, &knoop_contexts(), true) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn each_failure_has_its_own_reason() {
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let w = world();
        let good = issue(suite, 1, 2, None);
        let v = verify_credential(&good, &w, &knoop_contexts(), true).unwrap();
        assert_eq!(v.issuer, RA);
        assert_eq!(v.claims, org_claims());

        // Issued with key-2 after the rotation: fine.
        assert_eq!(code(&issue(suite, 2, 15, None), &w), "ok");
        // Signed by key-1 after it was rotated out.
        assert_eq!(
            code(&issue(suite, 1, 15, None), &w),
            "issuer_key_not_valid_at_issuance"
        );
        // Untrusted issuer.
        let mut w2 = world();
        w2.trusted.clear();
        assert_eq!(code(&good, &w2), "untrusted_issuer");
        // Expired.
        assert_eq!(
            code(&issue(suite, 1, 2, Some("2026-01-05T00:00:00Z")), &w),
            "expired"
        );
        // Not yet valid.
        let mut early = world();
        early.now = JAN_2026 - DAY;
        assert_eq!(code(&good, &early), "not_yet_valid");
        // An issuer's clock up to a minute ahead is tolerated; more is not.
        early.now = JAN_2026 - 30_000;
        assert_eq!(code(&good, &early), "ok");
        early.now = JAN_2026 - 90_000;
        assert_eq!(code(&good, &early), "not_yet_valid");
        // Revoked.
        let mut w3 = world();
        w3.revoked
            .insert("urn:uuid:0b2a6b5e-0000-4000-8000-000000000001".into());
        assert_eq!(code(&good, &w3), "revoked");
        // Tampered with.
        let mut bad = good.clone();
        bad["credentialSubject"]["city"] = "Leiden".into();
        assert_eq!(code(&bad, &w), "bad_proof");
        // Signed by someone else under the issuer's name.
        let mut other = good.clone();
        other["issuer"] = "did:knoop:someone-else".into();
        assert_eq!(code(&other, &w), "not_by_issuer");
        // Broken schema.
        let mut schema = good.clone();
        schema["credentialSubject"]["ura"] = "not digits".into();
        assert_eq!(code(&schema, &w), "schema");
    }
}

#[test]
fn professional_credentials_carry_their_employer() {
    let w = World {
        keys: [(
            format!("{HOSPITAL}#key-1"),
            (
                PublicJwk::Ed25519(SigningKey::from_bytes(&[9; 32]).verifying_key()),
                0,
                i64::MAX,
            ),
        )]
        .into(),
        revoked: HashSet::new(),
        trusted: [HOSPITAL.to_owned()].into(),
        lists: HashMap::new(),
        now: JAN_2026 + DAY,
    };
    let claims = Claims::HealthcareProfessional(HealthcareProfessional {
        id: "did:knoop:dr-jansen".into(),
        name: "Dr. A. Jansen".into(),
        role_code: "01.015".into(),
        register_id: "19012345601".into(),
        employer: HOSPITAL.into(),
    });
    let vc = unsigned(
        "urn:uuid:p1",
        HOSPITAL,
        &claims,
        "2026-01-01T00:00:00Z",
        None,
    );
    let mut opts = ProofOptions::new(Cryptosuite::EddsaJcs2022, format!("{HOSPITAL}#key-1"));
    opts.created = Some("2026-01-01T12:00:00Z".into());
    let signed = sign(
        &vc,
        &opts,
        &SigningKey::from_bytes(&[9; 32]),
        &knoop_contexts(),
    )
    .unwrap();
    let v = verify_credential(&signed, &w, &knoop_contexts(), true).unwrap();
    assert_eq!(v.claims, claims);
}

impl knoop_vc::presentation::HolderEnv for World {
    fn holder_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String> {
        self.issuer_key_at(vm, at_ms)
    }
}

#[test]
fn presentations_bind_challenge_domain_and_holder() {
    use knoop_vc::presentation::{present, verify_presentation};
    let mut w = world();
    // The hospital holds its organisation credential and presents it with its own key.
    w.keys.insert(
        format!("{HOSPITAL}#key-1"),
        (
            PublicJwk::Ed25519(SigningKey::from_bytes(&[9; 32]).verifying_key()),
            0,
            i64::MAX,
        ),
    );
    let cred = issue(Cryptosuite::EddsaJcs2022, 1, 2, None);
    let ctx = knoop_contexts();
    let vp = present(
        HOSPITAL,
        &format!("{HOSPITAL}#key-1"),
        &SigningKey::from_bytes(&[9; 32]),
        vec![cred.clone()],
        "nonce-123",
        "https://token.example",
        "2026-01-20T00:00:00Z",
        None,
        &ctx,
    )
    .unwrap();
    let ok = verify_presentation(&vp, &w, &ctx, "nonce-123", "https://token.example").unwrap();
    assert_eq!(ok.holder, HOSPITAL);
    assert_eq!(ok.credentials.len(), 1);
    let code = |r: Result<_, knoop_vc::presentation::PresentationFailure>| match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    assert_eq!(
        code(verify_presentation(
            &vp,
            &w,
            &ctx,
            "other",
            "https://token.example"
        )),
        "challenge_mismatch"
    );
    assert_eq!(
        code(verify_presentation(
            &vp,
            &w,
            &ctx,
            "nonce-123",
            "https://evil.example"
        )),
        "domain_mismatch"
    );
    // Signed by someone else in the holder's name.
    let forged = present(
        HOSPITAL,
        &format!("{HOSPITAL}#key-1"),
        &SigningKey::from_bytes(&[8; 32]),
        vec![cred.clone()],
        "nonce-123",
        "https://token.example",
        "2026-01-20T00:00:00Z",
        None,
        &ctx,
    )
    .unwrap();
    assert_eq!(
        code(verify_presentation(
            &forged,
            &w,
            &ctx,
            "nonce-123",
            "https://token.example"
        )),
        "bad_presentation_proof"
    );
    // A revoked credential inside fails the presentation with the credential's reason.
    w.revoked
        .insert("urn:uuid:0b2a6b5e-0000-4000-8000-000000000001".into());
    assert_eq!(
        code(verify_presentation(
            &vp,
            &w,
            &ctx,
            "nonce-123",
            "https://token.example"
        )),
        "revoked"
    );
}

/// The organisation credential as a `vc+jwt`, signed with `key` at `valid_from`.
fn issue_jwt(key: u8, valid_from: &str, until: Option<&str>) -> Value {
    let vc = unsigned(
        "urn:uuid:0b2a6b5e-0000-4000-8000-000000000001",
        RA,
        &org_claims(),
        valid_from,
        until,
    );
    let jwt = jose::sign(
        &vc,
        &format!("{RA}#key-{key}"),
        &knoop_vc::jws::SigningKey::Ed25519(SigningKey::from_bytes(&[key; 32])),
    )
    .unwrap();
    Value::String(jwt)
}

#[test]
fn jose_credentials_fail_for_the_same_reasons() {
    let w = world();
    let good = issue_jwt(1, "2026-01-03T00:00:00Z", None);
    let v = verify_credential(&good, &w, &knoop_contexts(), true).unwrap();
    assert_eq!(v.claims, org_claims());
    assert_eq!(v.securing.name(), "jose-eddsa");
    // Enveloped, as a presentation carries it.
    let enveloped = jose::envelope(good.as_str().unwrap());
    assert_eq!(code(&enveloped, &w), "ok");
    // After the rotation, key-2 is right and key-1 is not.
    assert_eq!(code(&issue_jwt(2, "2026-01-15T00:00:00Z", None), &w), "ok");
    assert_eq!(
        code(&issue_jwt(1, "2026-01-15T00:00:00Z", None), &w),
        "issuer_key_not_valid_at_issuance"
    );
    assert_eq!(
        code(
            &issue_jwt(1, "2026-01-03T00:00:00Z", Some("2026-01-05T00:00:00Z")),
            &w
        ),
        "expired"
    );
    let mut w2 = world();
    w2.trusted.clear();
    assert_eq!(code(&good, &w2), "untrusted_issuer");
    let mut w3 = world();
    w3.revoked
        .insert("urn:uuid:0b2a6b5e-0000-4000-8000-000000000001".into());
    assert_eq!(code(&good, &w3), "revoked");
    // Tampered: the payload of another credential under this signature.
    let other = issue_jwt(1, "2026-01-04T00:00:00Z", None);
    let (g, o) = (good.as_str().unwrap(), other.as_str().unwrap());
    let g: Vec<&str> = g.split('.').collect();
    let o: Vec<&str> = o.split('.').collect();
    let spliced = Value::String(format!("{}.{}.{}", g[0], o[1], g[2]));
    assert_eq!(code(&spliced, &w), "bad_proof");
    assert_eq!(code(&Value::String("not.a.jwt".into()), &w), "malformed");
}

#[test]
fn jose_interoperates_with_ssi() {
    use ssi::claims::jws::{decode_verify, encode_sign_custom_header, Header};
    use ssi::jwk::{Algorithm, JWK};
    let w = world();
    let key = SigningKey::from_bytes(&[1; 32]);
    // Ours, verified by ssi.
    let ours = issue_jwt(1, "2026-01-03T00:00:00Z", None);
    let public = JWK::from(key.verifying_key());
    let (header, payload) = decode_verify(ours.as_str().unwrap(), &public).unwrap();
    assert_eq!(header.type_.as_deref(), Some("vc+jwt"));
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["credentialSubject"]["ura"], "87654321");
    // ssi's, verified by ours.
    let vc = unsigned(
        "urn:uuid:0b2a6b5e-0000-4000-8000-000000000001",
        RA,
        &org_claims(),
        "2026-01-03T00:00:00Z",
        None,
    );
    let secret = JWK::from(ssi::jwk::Params::OKP(ssi::jwk::OctetParams {
        curve: "Ed25519".into(),
        public_key: ssi::jwk::Base64urlUInt(key.verifying_key().to_bytes().to_vec()),
        private_key: Some(ssi::jwk::Base64urlUInt(key.to_bytes().to_vec())),
    }));
    let header = Header {
        algorithm: Algorithm::EdDSA,
        key_id: Some(format!("{RA}#key-1")),
        type_: Some("vc+jwt".into()),
        ..Default::default()
    };
    let theirs = encode_sign_custom_header(&vc.to_string(), &secret, &header).unwrap();
    let v = verify_credential(&Value::String(theirs), &w, &knoop_contexts(), true).unwrap();
    assert_eq!(v.claims, org_claims());
}

const LIST_URL: &str = "https://registry.example/status/1";

fn with_status(index: usize, purpose: &str) -> Value {
    let mut vc = unsigned(
        "urn:uuid:0b2a6b5e-0000-4000-8000-000000000001",
        RA,
        &org_claims(),
        "2026-01-03T00:00:00Z",
        None,
    );
    vc["credentialStatus"] = serde_json::json!({
        "id": format!("{LIST_URL}#{index}"),
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose,
        "statusListIndex": index.to_string(),
        "statusListCredential": LIST_URL,
    });
    let mut opts = ProofOptions::new(Cryptosuite::EddsaRdfc2022, format!("{RA}#key-1"));
    opts.created = Some("2026-01-03T00:00:00Z".into());
    sign(
        &vc,
        &opts,
        &SigningKey::from_bytes(&[1; 32]),
        &knoop_contexts(),
    )
    .unwrap()
}

fn status_list(issuer: &str, key: u8, purpose: &str, set: &[usize]) -> Value {
    let list = serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": LIST_URL,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": "2026-01-02T00:00:00Z",
        "credentialSubject": {
            "id": format!("{LIST_URL}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encode_list(set, 131_072),
        },
    });
    let mut opts = ProofOptions::new(Cryptosuite::EddsaRdfc2022, format!("{issuer}#key-{key}"));
    opts.created = Some("2026-01-04T00:00:00Z".into());
    sign(
        &list,
        &opts,
        &SigningKey::from_bytes(&[key; 32]),
        &knoop_contexts(),
    )
    .unwrap()
}

#[test]
fn bitstring_status_lists_revoke_and_suspend() {
    let mut w = world();
    // No list to be had: the status cannot be checked, and that is a failure.
    assert_eq!(
        code(&with_status(42, "revocation"), &w),
        "status_unavailable"
    );
    w.lists
        .insert(LIST_URL.into(), status_list(RA, 1, "revocation", &[7, 42]));
    assert_eq!(code(&with_status(41, "revocation"), &w), "ok");
    assert_eq!(code(&with_status(42, "revocation"), &w), "revoked");
    // The list is for revocation; a suspension entry pointing at it cannot be read.
    assert_eq!(
        code(&with_status(41, "suspension"), &w),
        "status_unavailable"
    );
    w.lists
        .insert(LIST_URL.into(), status_list(RA, 1, "suspension", &[42]));
    assert_eq!(code(&with_status(42, "suspension"), &w), "suspended");
    // A list signed by someone else, or tampered with, does not count.
    w.keys.insert(
        "did:knoop:other#key-5".into(),
        (
            PublicJwk::Ed25519(SigningKey::from_bytes(&[5; 32]).verifying_key()),
            0,
            i64::MAX,
        ),
    );
    w.lists.insert(
        LIST_URL.into(),
        status_list("did:knoop:other", 5, "revocation", &[]),
    );
    assert_eq!(
        code(&with_status(42, "revocation"), &w),
        "status_unavailable"
    );
    let mut tampered = status_list(RA, 1, "revocation", &[42]);
    tampered["credentialSubject"]["encodedList"] = encode_list(&[], 131_072).into();
    w.lists.insert(LIST_URL.into(), tampered);
    assert_eq!(
        code(&with_status(42, "revocation"), &w),
        "status_unavailable"
    );
}

#[test]
fn status_list_vectors() {
    use knoop_vc::status::{entries, StatusEntry, StatusList};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../specs/vectors/status-list.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for list in v["lists"].as_array().unwrap() {
        let name = list["name"].as_str().unwrap();
        let vc = serde_json::json!({
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "credentialSubject": {
                "type": "BitstringStatusList", "statusPurpose": "revocation",
                "encodedList": list["encodedList"],
            },
        });
        let decoded = StatusList::from_credential(&vc).unwrap();
        let len = list["lengthBits"].as_u64().unwrap() as usize;
        let set: Vec<usize> = (0..len)
            .filter(|&index| {
                let e = StatusEntry {
                    purpose: "revocation".into(),
                    index,
                    list: String::new(),
                    size: 1,
                };
                decoded.status(&e).unwrap() == 1
            })
            .collect();
        let want: Vec<usize> = list["set"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(set, want, "{name}");
        // Our encoder's output decodes to the same bits (its bytes differ: gzip settings).
        let ours = serde_json::json!({
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "credentialSubject": {
                "type": "BitstringStatusList", "statusPurpose": "revocation",
                "encodedList": encode_list(&want, len),
            },
        });
        let again = StatusList::from_credential(&ours).unwrap();
        for &i in &want {
            let e = StatusEntry {
                purpose: "revocation".into(),
                index: i,
                list: String::new(),
                size: 1,
            };
            assert_eq!(again.status(&e).unwrap(), 1, "{name} {i}");
        }
    }
    for case in v["entries"].as_array().unwrap() {
        let vc = serde_json::json!({"credentialStatus": case["entry"]});
        let got = entries(&vc);
        if case["valid"].as_bool().unwrap() {
            let got = got.unwrap();
            assert_eq!(got[0].index as u64, case["index"].as_u64().unwrap());
        } else {
            assert!(got.is_err(), "{}", case["entry"]);
        }
    }
}

/// VC 1.1 presentation JWTs (the RFC 7523 assertion): an ES256 holder presents a Data Integrity
/// credential and a `vc+jwt`; audience, times, key and holder are each checked.
#[test]
fn presentation_jwts_bind_audience_time_and_holder() {
    use knoop_vc::jws::SigningKey as JwsKey;
    use knoop_vc::presentation::{present_jwt, verify_presentation_jwt, MAX_VP_JWT_LIFETIME_S};
    let mut w = world();
    let holder_key = JwsKey::generate_p256();
    let kid = format!("{HOSPITAL}#p256");
    w.keys
        .insert(kid.clone(), (holder_key.public_jwk(), 0, i64::MAX));
    let ctx = knoop_contexts();
    let creds = vec![
        issue(Cryptosuite::EddsaJcs2022, 1, 2, None),
        issue_jwt(1, "2026-01-02T00:00:00Z", None),
    ];
    let now = w.now / 1000;
    let aud = "https://node.example";
    let make = |key: &JwsKey, kid: &str, aud: &str, iat: i64, ttl: i64| {
        present_jwt(
            HOSPITAL,
            kid,
            key,
            creds.clone(),
            aud,
            Some("n"),
            iat,
            ttl,
            "urn:uuid:j1",
        )
    };
    let good = make(&holder_key, &kid, aud, now - 5, 60);
    let v = verify_presentation_jwt(&good, &w, &ctx, &["did:knoop:x", aud], now).unwrap();
    assert_eq!(v.presentation.holder, HOSPITAL);
    assert_eq!(v.presentation.credentials.len(), 2);
    assert_eq!((v.jti.as_str(), v.expires_s), ("urn:uuid:j1", now + 55));
    assert_eq!(v.nonce.as_deref(), Some("n"));
    // A relative kid names a key of the holder.
    let relative = make(&holder_key, "#p256", aud, now, 60);
    assert!(verify_presentation_jwt(&relative, &w, &ctx, &[aud], now).is_ok());
    let code = |jwt: &str| match verify_presentation_jwt(jwt, &w, &ctx, &[aud], now) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    assert_eq!(
        code(&make(&holder_key, &kid, "https://other.example", now, 60)),
        "audience_mismatch"
    );
    assert_eq!(
        code(&make(&holder_key, &kid, aud, now - 200, 60)),
        "presentation_expired"
    );
    assert_eq!(
        code(&make(
            &holder_key,
            &kid,
            aud,
            now,
            MAX_VP_JWT_LIFETIME_S + 1
        )),
        "bad_presentation_jwt"
    );
    assert_eq!(
        code(&make(&holder_key, &kid, aud, now + 600, 60)),
        "bad_presentation_jwt"
    );
    assert_eq!(
        code(&make(&JwsKey::generate_p256(), &kid, aud, now, 60)),
        "bad_presentation_jwt",
        "signed by another key"
    );
    assert_eq!(
        code(&make(&holder_key, &format!("{RA}#key-2"), aud, now, 60)),
        "holder_key",
        "a key of another DID"
    );
    assert_eq!(
        code(&make(
            &holder_key,
            &format!("{HOSPITAL}#nope"),
            aud,
            now,
            60
        )),
        "holder_key"
    );
    // A revoked credential inside fails it with the credential's reason.
    let mut revoked = world();
    revoked
        .keys
        .insert(kid.clone(), (holder_key.public_jwk(), 0, i64::MAX));
    revoked
        .revoked
        .insert("urn:uuid:0b2a6b5e-0000-4000-8000-000000000001".into());
    let r = verify_presentation_jwt(&good, &revoked, &ctx, &[aud], now).unwrap_err();
    assert_eq!(r.code(), "revoked");
}
