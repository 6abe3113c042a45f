//! Vectors from outside knoop: RFC 8037 Appendix A (Ed25519) and `specs/vectors/jose.json`
//! (made with joserfc), then the refusals.

use super::*;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../specs/vectors/jose.json")).expect("vectors")
}

/// RFC 8037 §A.1, §A.3, §A.4: the Ed25519 key, its thumbprint and the signature of
/// "Example of Ed25519 signing".
const RFC8037_JWK: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
const RFC8037_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

#[test]
fn rfc_8037_vectors_verify() {
    let key = PublicJwk::from_json(&serde_json::from_str(RFC8037_JWK).unwrap()).unwrap();
    assert_eq!(key.thumbprint(), RFC8037_THUMBPRINT);
    let jws = Compact::parse(RFC8037_JWS).unwrap();
    assert_eq!(jws.alg, Alg::EdDSA);
    assert_eq!(jws.payload, b"Example of Ed25519 signing");
    jws.verify(&key).unwrap();
}

#[test]
fn joserfc_signatures_and_thumbprints_match() {
    let v = vectors();
    let payload = v["payload"].as_str().unwrap().as_bytes();
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), Alg::ALL.len());
    for s in sigs {
        let alg = s["alg"].as_str().unwrap();
        let key = PublicJwk::from_json(&s["jwk"]).unwrap();
        assert_eq!(key.thumbprint(), s["thumbprint"], "{alg}");
        // The key survives a round trip through its JWK.
        assert_eq!(PublicJwk::from_json(&key.to_json()).unwrap(), key, "{alg}");
        let jws = Compact::parse(s["jws"].as_str().unwrap()).unwrap();
        assert_eq!(jws.alg.name(), alg);
        assert_eq!(jws.payload, payload);
        jws.verify(&key).unwrap_or_else(|e| panic!("{alg}: {e}"));
        // One flipped bit in the payload breaks it.
        let mut t = jws.clone();
        t.signing_input
            .replace_range(t.signing_input.len() - 2.., "x");
        assert_eq!(t.verify(&key), Err(JwsError::BadSignature), "{alg}");
    }
}

#[test]
fn keys_sign_what_others_verify() {
    for key in [
        SigningKey::generate_p256(),
        SigningKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)),
    ] {
        let mut header = Map::new();
        header.insert("typ".into(), "JWT".into());
        let jws = key.sign_compact(header, br#"{"a":1}"#);
        let c = Compact::parse(&jws).unwrap();
        assert_eq!(c.alg, key.alg());
        assert_eq!(c.header_str("typ"), Some("JWT"));
        assert_eq!(c.claims().unwrap()["a"], 1);
        c.verify(&key.public_jwk()).unwrap();
        let other = SigningKey::generate_p256().public_jwk();
        assert!(c.verify(&other).is_err());
    }
}

fn unsigned(header: &str) -> String {
    format!(
        "{}.{}.{}",
        BASE64_URL_SAFE_NO_PAD.encode(header),
        BASE64_URL_SAFE_NO_PAD.encode("{}"),
        BASE64_URL_SAFE_NO_PAD.encode([0u8; 64])
    )
}

#[test]
fn algorithm_confusion_is_refused() {
    // none and the HMAC family are never algorithms of a public key (RFC 8725 §3.1).
    for alg in ["none", "HS256", "HS512", "ES256K", "RS512", ""] {
        let e = Compact::parse(&unsigned(&format!(r#"{{"alg":"{alg}"}}"#))).unwrap_err();
        assert!(matches!(e, JwsError::Algorithm(_)), "{alg}: {e:?}");
    }
    // A signature made for one key type is never tried with another.
    let v = vectors();
    let sigs = v["signatures"].as_array().unwrap();
    for s in sigs {
        let jws = Compact::parse(s["jws"].as_str().unwrap()).unwrap();
        for other in sigs.iter().filter(|o| o["jwk"] != s["jwk"]) {
            let key = PublicJwk::from_json(&other["jwk"]).unwrap();
            assert!(
                matches!(jws.verify(&key), Err(JwsError::KeyMismatch { .. })),
                "{} with {}",
                s["alg"],
                other["alg"]
            );
        }
    }
    // Unknown extensions and unencoded payloads.
    for header in [
        r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"ES256","b64":false}"#,
        r#"{"typ":"JWT"}"#,
        r#"["ES256"]"#,
    ] {
        assert!(
            matches!(
                Compact::parse(&unsigned(header)),
                Err(JwsError::Malformed(_))
            ),
            "{header}"
        );
    }
}

#[test]
fn malformed_jws_and_keys_are_refused() {
    for jws in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30"] {
        assert!(Compact::parse(jws).is_err(), "{jws:?}");
    }
    assert_eq!(
        Compact::parse(&"a".repeat(MAX_JWS_BYTES + 1)).unwrap_err(),
        JwsError::TooLarge
    );
    let v = vectors();
    let p256 = v["signatures"][0]["jwk"].clone();
    let rsa = v["signatures"][2]["jwk"].clone();
    let mut with_d = p256.clone();
    with_d["d"] = "AAAA".into();
    let mut off_curve = p256.clone();
    off_curve["y"] = off_curve["x"].clone();
    let mut enc = p256.clone();
    enc["use"] = "enc".into();
    let mut short_rsa = rsa.clone();
    short_rsa["n"] = BASE64_URL_SAFE_NO_PAD.encode([0xC5u8; 128]).into();
    let mut short_x = p256.clone();
    short_x["x"] = "AAAA".into();
    for (name, jwk) in [
        ("private", with_d),
        ("off curve", off_curve),
        ("use enc", enc),
        ("1024-bit RSA", short_rsa),
        ("short x", short_x),
        ("oct", json!({"kty": "oct", "k": "c2VjcmV0"})),
        (
            "secp256k1",
            json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}),
        ),
        ("X25519", json!({"kty": "OKP", "crv": "X25519", "x": "AA"})),
        ("not an object", json!("key")),
    ] {
        assert!(PublicJwk::from_json(&jwk).is_err(), "{name}");
    }
}
