//! Full verification of knoop credentials: each way a credential can be wrong fails with its
//! own code, through both cryptosuites.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{SigningKey, VerifyingKey};
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{knoop_contexts, unsigned, CareOrganization, Claims, HealthcareProfessional};
use knoop_vc::verify::{verify_credential, VerifierEnv};
use serde_json::Value;

const RA: &str = "did:knoop:registry";
const HOSPITAL: &str = "did:knoop:hospital";
const JAN_2026: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;

/// A world with one key per issuer, valid from `from` until `until` (a rotation).
struct World {
    keys: HashMap<String, (VerifyingKey, i64, i64)>,
    revoked: HashSet<String>,
    trusted: HashSet<String>,
    now: i64,
}

impl VerifierEnv for World {
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<VerifyingKey, String> {
        let (k, from, until) = self.keys.get(vm).ok_or("unknown key")?;
        if at_ms < *from || at_ms >= *until {
            return Err(format!("{vm} was not an assertionMethod key at that time"));
        }
        Ok(*k)
    }
    fn revoked(&self, _issuer: &str, id: &str) -> Option<String> {
        self.revoked
            .contains(id)
            .then(|| "revoked by issuer".into())
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
            SigningKey::from_bytes(&[1; 32]).verifying_key(),
            0,
            JAN_2026 + 10 * DAY,
        ),
    );
    keys.insert(
        format!("{RA}#key-2"),
        (
            SigningKey::from_bytes(&[2; 32]).verifying_key(),
            JAN_2026 + 10 * DAY,
            i64::MAX,
        ),
    );
    World {
        keys,
        revoked: HashSet::new(),
        trusted: [RA.to_owned()].into(),
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
                SigningKey::from_bytes(&[9; 32]).verifying_key(),
                0,
                i64::MAX,
            ),
        )]
        .into(),
        revoked: HashSet::new(),
        trusted: [HOSPITAL.to_owned()].into(),
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
    fn holder_key_at(&self, vm: &str, at_ms: i64) -> Result<VerifyingKey, String> {
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
            SigningKey::from_bytes(&[9; 32]).verifying_key(),
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
