//! A Dezi-shaped attestation made here with a throw-away RSA key (RS256, as Dezi signs), its
//! credential, and each mismatch.

use super::*;
use crate::jws::SigningKey;
use serde_json::{json, Map};

const JKU: &str = "https://auth.dezi.example/jwks.json";
const NOW: i64 = 1_790_000_000;

fn attestation(key: &SigningKey, kid: &str) -> String {
    let mut header = Map::new();
    header.insert("kid".into(), kid.into());
    header.insert("jku".into(), JKU.into());
    header.insert("typ".into(), "JWT".into());
    let claims = json!({
        "jti": "61b1fafc", "iss": "abonnee.dezi.example", "nbf": NOW - 60, "exp": NOW + 3600,
        "dezi_nummer": "900000009", "voorletters": "B.B.", "voorvoegsel": "van der",
        "achternaam": "Jansen", "abonnee_nummer": "87654321", "abonnee_naam": "Medisch centrum",
        "verklaring": {"rol_code": "01.041", "rol_naam": "Revalidatiearts",
                       "rol_code_bron": "http://www.dezi.nl/rol_bron/big"},
    });
    key.sign_compact(header, claims.to_string().as_bytes())
}

fn credential(jwt: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://example.org/contexts/dezi/v1"],
        "type": ["VerifiableCredential", "DeziUserCredential"],
        "issuer": "did:web:abonnee.dezi.example",
        "validFrom": "2026-09-21T14:12:20Z",
        "validUntil": "2026-09-21T15:13:20Z",
        "credentialSubject": {
            "id": "did:web:zorgaanbieder.example", "identifier": "87654321", "name": "Medisch centrum",
            "employee": {"identifier": "900000009", "initials": "B.B.", "surnamePrefix": "van der",
                         "surname": "Jansen", "role": "01.041", "role_name": "Revalidatiearts",
                         "role_registry": "http://www.dezi.nl/rol_bron/big"},
        },
        "proof": {"type": PROOF_TYPE, "jwt": jwt},
    })
}

#[test]
fn an_attestation_and_its_credential_agree() {
    let key = SigningKey::generate_p256();
    let other = SigningKey::generate_p256();
    let set: KeySet = vec![
        (Some("other".into()), other.public_jwk()),
        (Some("k1".into()), key.public_jwk()),
    ];
    let keys = |url: &str| {
        (url == JKU)
            .then(|| set.clone())
            .ok_or_else(|| "untrusted".to_owned())
    };
    let c = credential(&attestation(&key, "k1"));
    assert_eq!(verify(&c, &keys, NOW).unwrap(), JKU);
    assert_eq!(key_set_url(&c).as_deref(), Some(JKU));
    // Outside the attestation's time, or its key is not the one it names.
    assert_eq!(verify(&c, &keys, NOW + 7200), Err(DeziError::Time));
    assert!(matches!(
        verify(&credential(&attestation(&key, "other")), &keys, NOW),
        Err(DeziError::Jwt(_))
    ));
    assert!(matches!(
        verify(&credential(&attestation(&key, "nope")), &keys, NOW),
        Err(DeziError::KeySet(..))
    ));
    let nowhere = |_: &str| Err::<KeySet, _>("untrusted".to_owned());
    assert!(matches!(
        verify(&c, &nowhere, NOW),
        Err(DeziError::KeySet(..))
    ));
    // Every claim must say what the attestation says.
    for (path, value) in [
        ("/credentialSubject/identifier", json!("12345678")),
        ("/credentialSubject/employee/role", json!("01.015")),
        ("/credentialSubject/employee/surnamePrefix", Value::Null),
        ("/credentialSubject/employee/identifier", json!("900000010")),
        ("/issuer", json!("did:web:evil.example")),
        ("/validUntil", json!("2027-01-01T00:00:00Z")),
        ("/proof/type", json!("DeziIDJWT06")),
    ] {
        let mut bad = c.clone();
        *bad.pointer_mut(path).unwrap() = value;
        assert!(verify(&bad, &keys, NOW).is_err(), "{path}");
    }
}

#[test]
fn key_sets_keep_the_usable_keys() {
    let key = SigningKey::generate_p256();
    let mut jwk = key.public_jwk().to_json();
    jwk["kid"] = "k1".into();
    let set = json!({"keys": [jwk, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]});
    let parsed = parse_key_set(&set).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].0.as_deref(), Some("k1"));
    assert!(parse_key_set(&json!({"no": []})).is_err());
}

#[test]
fn an_id_token_becomes_the_credential_that_verifies() {
    let key = SigningKey::generate_p256();
    let set: KeySet = vec![(Some("k1".into()), key.public_jwk())];
    let keys = |_: &str| Ok(set.clone());
    let jwt = attestation(&key, "k1");
    let c = credential_of(&jwt, "did:knoop:holder").unwrap();
    assert_eq!(verify(&c, &keys, NOW).unwrap(), JKU);
    assert_eq!(c["issuer"], "did:web:abonnee.dezi.example");
    assert_eq!(c["credentialSubject"]["id"], "did:knoop:holder");
    assert_eq!(c["credentialSubject"]["identifier"], "87654321");
    assert_eq!(c["credentialSubject"]["employee"]["role"], "01.041");
    // The same credential as written by hand.
    assert_eq!(
        c["credentialSubject"]["employee"],
        credential(&jwt)["credentialSubject"]["employee"]
    );
    assert!(credential_of("not a jwt", "did:knoop:holder").is_err());
}
