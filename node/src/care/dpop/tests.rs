//! The RFC 9449 checks, on the joserfc proof of `specs/vectors/jose.json` and on proofs made
//! here.

use super::*;

fn vector() -> Value {
    let v: Value =
        serde_json::from_str(include_str!("../../../../specs/vectors/jose.json")).expect("vectors");
    v["dpop"].clone()
}

fn expect<'a>(v: &'a Value) -> Expect<'a> {
    Expect {
        method: "GET",
        url: v["claims"]["htu"].as_str().unwrap(),
        access_token: v["access_token"].as_str(),
    }
}

#[test]
fn an_outside_proof_verifies() {
    let v = vector();
    let iat = v["claims"]["iat"].as_i64().unwrap();
    assert_eq!(
        access_token_hash(v["access_token"].as_str().unwrap()),
        v["ath"]
    );
    let p = check(v["proof"].as_str().unwrap(), &expect(&v), iat + 10).unwrap();
    assert_eq!(p.jkt, v["jkt"]);
    assert_eq!(p.jti, v["claims"]["jti"]);
    assert_eq!(p.nonce.as_deref(), v["claims"]["nonce"].as_str());
    // The query and fragment of the request are ignored, the host's case and default port too.
    let url = "https://NODE.example:443/fhir/MedicationStatement?_count=5#x";
    let e = Expect { url, ..expect(&v) };
    assert!(check(v["proof"].as_str().unwrap(), &e, iat).is_ok());
}

#[test]
fn a_proof_for_another_request_is_refused() {
    let v = vector();
    let proof = v["proof"].as_str().unwrap();
    let iat = v["claims"]["iat"].as_i64().unwrap();
    let base = expect(&v);
    let cases: [(&str, Expect<'_>, i64); 7] = [
        (
            "method",
            Expect {
                method: "POST",
                ..base
            },
            iat,
        ),
        (
            "path",
            Expect {
                url: "https://node.example/fhir/Condition",
                ..base
            },
            iat,
        ),
        (
            "host",
            Expect {
                url: "https://other.example/fhir/MedicationStatement",
                ..base
            },
            iat,
        ),
        (
            "token",
            Expect {
                access_token: Some("another-token"),
                ..base
            },
            iat,
        ),
        ("old", base, iat + MAX_PROOF_AGE_S + 1),
        ("future", base, iat - MAX_FUTURE_S - 1),
        (
            "url",
            Expect {
                url: "not a url",
                ..base
            },
            iat,
        ),
    ];
    for (name, e, now) in cases {
        let err = check(proof, &e, now).unwrap_err();
        assert_eq!(err.code(), "invalid_dpop_proof", "{name}: {err}");
    }
}

fn claims_proof(key: &SigningKey, header: Map<String, Value>, claims: Value) -> String {
    key.sign_compact(header, claims.to_string().as_bytes())
}

fn dpop_header(key: &SigningKey) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("typ".into(), DPOP_JWT_TYPE.into());
    h.insert("jwk".into(), key.public_jwk().to_json());
    h
}

#[test]
fn malformed_proofs_are_refused() {
    let key = SigningKey::generate_p256();
    let now = 1_800_000_000;
    let url = "https://node.example/oauth2/token";
    let e = Expect {
        method: "POST",
        url,
        access_token: None,
    };
    let good = json!({"jti": "j", "htm": "POST", "htu": url, "iat": now});
    assert!(check(
        &claims_proof(&key, dpop_header(&key), good.clone()),
        &e,
        now
    )
    .is_ok());
    let mut no_typ = dpop_header(&key);
    no_typ.insert("typ".into(), "JWT".into());
    let mut no_jwk = dpop_header(&key);
    no_jwk.remove("jwk");
    let mut other_jwk = dpop_header(&key);
    other_jwk.insert(
        "jwk".into(),
        SigningKey::generate_p256().public_jwk().to_json(),
    );
    let mut private_jwk = dpop_header(&key);
    if let Some(j) = private_jwk.get_mut("jwk") {
        j["d"] = "AAAA".into();
    }
    for (name, header) in [
        ("typ", no_typ),
        ("no jwk", no_jwk),
        ("jwk of another key", other_jwk),
        ("private jwk", private_jwk),
    ] {
        let p = claims_proof(&key, header, good.clone());
        assert!(check(&p, &e, now).is_err(), "{name}");
    }
    let mut bad_claims = Vec::new();
    for drop in ["jti", "htm", "htu", "iat"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(drop);
        bad_claims.push(c);
    }
    let mut long_jti = good.clone();
    long_jti["jti"] = "j".repeat(MAX_JTI + 1).into();
    let mut number_nonce = good.clone();
    number_nonce["nonce"] = 5.into();
    let mut string_iat = good.clone();
    string_iat["iat"] = "now".into();
    bad_claims.extend([long_jti, number_nonce, string_iat]);
    for c in bad_claims {
        let p = claims_proof(&key, dpop_header(&key), c.clone());
        assert!(check(&p, &e, now).is_err(), "{c}");
    }
    // An unsigned proof (alg none) and an HMAC one.
    let none = format!(
        "{}.{}.",
        BASE64_URL_SAFE_NO_PAD.encode(r#"{"typ":"dpop+jwt","alg":"none"}"#),
        BASE64_URL_SAFE_NO_PAD.encode(good.to_string())
    );
    assert!(matches!(check(&none, &e, now), Err(DpopError::Jws(_))));
}

#[test]
fn the_guard_wants_its_nonce_and_refuses_replays() {
    crate::store::conformance::both(|open| the_guard_on(open()));
}

/// Two guards on one store (replicas of a node): each accepts the other's nonce and refuses
/// the other's replays.
#[test]
fn replicas_share_nonces_and_the_replay_cache() {
    let conn = crate::store::conformance::fresh_database();
    let open = || -> std::sync::Arc<dyn crate::store::NodeStore> {
        std::sync::Arc::new(crate::store::PgStore::open(&conn, None, 2).unwrap())
    };
    let (a, b) = (DpopGuard::new(open()), DpopGuard::new(open()));
    let key = SigningKey::generate_p256();
    let url = "https://node.example/oauth2/token";
    let e = Expect {
        method: "POST",
        url,
        access_token: None,
    };
    let nonce = a.nonce();
    assert_eq!(b.nonce(), nonce);
    let with = proof(&key, "POST", url, None, Some(&nonce), now_s());
    assert!(b.verify(&with, &e, true).is_ok());
    assert_eq!(a.verify(&with, &e, true), Err(DpopError::Replay));
}

fn the_guard_on(store: std::sync::Arc<dyn crate::store::NodeStore>) {
    let g = DpopGuard::new(store);
    let key = SigningKey::generate_p256();
    let url = "https://node.example/oauth2/token";
    let e = Expect {
        method: "POST",
        url,
        access_token: None,
    };
    let now = now_s();
    let without = proof(&key, "POST", url, None, None, now);
    assert_eq!(g.verify(&without, &e, true), Err(DpopError::UseNonce));
    let unknown = proof(&key, "POST", url, None, Some("not-ours"), now);
    assert_eq!(g.verify(&unknown, &e, false), Err(DpopError::UseNonce));
    let nonce = g.nonce();
    let with = proof(&key, "POST", url, None, Some(&nonce), now);
    let p = g.verify(&with, &e, true).unwrap();
    assert_eq!(p.jkt, key.public_jwk().thumbprint());
    assert_eq!(g.verify(&with, &e, true), Err(DpopError::Replay));
    // Without a required nonce a proof is fine once.
    assert!(g.verify(&without, &e, false).is_ok());
    assert_eq!(g.verify(&without, &e, false), Err(DpopError::Replay));
}

#[test]
fn nonces_rotate_and_expire() {
    let (store, _dir) = crate::store::conformance::rocks();
    let g = DpopGuard::new(store);
    // The start of a period.
    let t0 = now_s().div_euclid(NONCE_PERIOD_S) * NONCE_PERIOD_S;
    let first = g.nonce_at(t0);
    assert_eq!(g.nonce_at(t0 + 1), first);
    let second = g.nonce_at(t0 + NONCE_PERIOD_S);
    assert_ne!(second, first);
    assert!(
        g.nonce_is_live(&first, t0 + NONCE_PERIOD_S + 1),
        "the previous one still"
    );
    let third = g.nonce_at(t0 + 2 * NONCE_PERIOD_S);
    assert!(!g.nonce_is_live(&first, t0 + 2 * NONCE_PERIOD_S));
    assert!(g.nonce_is_live(&second, t0 + 2 * NONCE_PERIOD_S));
    assert!(g.nonce_is_live(&third, t0 + 2 * NONCE_PERIOD_S));
    assert!(!g.nonce_is_live("", t0));
}
