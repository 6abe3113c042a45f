//! The key proof of a credential request (spec: `specs/oid4vci.md` §6; OpenID4VCI 1.0
//! Appendix F.1, F.4): a JWT by the holder's DID key for this issuer, checked without IO (the
//! key comes from the caller).

use knoop_vc::jws::Compact;
use serde_json::Value;

use super::errors::{cred_error, CredentialError};
use super::metadata::BINDING_METHODS;

/// The `typ` of a key proof JWT (OpenID4VCI 1.0 Appendix F.1).
pub const PROOF_JWT_TYPE: &str = "openid4vci-proof+jwt";

/// Oldest and most future `iat` of a key proof (seconds from now).
const MAX_PROOF_AGE_S: i64 = 300;
const MAX_PROOF_FUTURE_S: i64 = 60;

/// A key proof that checked out: the holder's DID and the proof's nonce.
#[derive(Debug, PartialEq)]
pub struct KeyProof {
    pub holder: String,
    pub nonce: Option<String>,
}

/// Checks a key proof JWT (OpenID4VCI 1.0 Appendix F.1, F.4) for issuer `aud` at `now`
/// (seconds): typed `openid4vci-proof+jwt`, an asymmetric algorithm, a `kid` that is a DID URL
/// of a supported method (no `jwk` or `x5c`: credentials are bound to DIDs), signed by the key
/// `key_of(kid)` gives, `aud` the issuer, `iat` within 5 minutes before and 1 after `now`.
pub fn check_proof_jwt(
    jwt: &str,
    aud: &str,
    now: i64,
    key_of: impl FnOnce(&str) -> Result<knoop_vc::jws::PublicJwk, String>,
) -> Result<KeyProof, CredentialError> {
    let bad = |d: String| cred_error("invalid_proof", d);
    let jws = Compact::parse(jwt).map_err(|e| bad(e.to_string()))?;
    if jws.header_str("typ") != Some(PROOF_JWT_TYPE) {
        return Err(bad(format!("typ must be {PROOF_JWT_TYPE}")));
    }
    if jws.header.contains_key("jwk") || jws.header.contains_key("x5c") {
        return Err(bad(
            "this issuer binds credentials to DIDs: give a kid (a DID URL), not jwk or x5c".into(),
        ));
    }
    let kid = jws
        .header_str("kid")
        .ok_or_else(|| bad("kid (a DID URL) is required".into()))?;
    let (did, fragment) = kid
        .split_once('#')
        .ok_or_else(|| bad(format!("kid {kid} is not a DID URL with a fragment")))?;
    let supported = BINDING_METHODS
        .iter()
        .any(|m| did.starts_with(&format!("{m}:")));
    if fragment.is_empty() || !supported {
        return Err(bad(format!(
            "kid {kid}: the DID methods supported are {}",
            BINDING_METHODS.join(", ")
        )));
    }
    let claims = jws.claims().map_err(|e| bad(e.to_string()))?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == aud,
        Some(Value::Array(a)) => a.iter().any(|x| x == aud),
        _ => false,
    };
    if !aud_ok {
        return Err(bad(format!("aud must be the credential issuer {aud}")));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("iat is required".into()))?;
    if iat > now + MAX_PROOF_FUTURE_S || iat < now - MAX_PROOF_AGE_S {
        return Err(bad(format!(
            "iat is {iat}; it must be within {MAX_PROOF_AGE_S} s of now ({now})"
        )));
    }
    let key = key_of(kid).map_err(bad)?;
    jws.verify(&key)
        .map_err(|e| bad(format!("signature: {e}")))?;
    Ok(KeyProof {
        holder: did.to_owned(),
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
    use knoop_vc::jws::PublicJwk;

    /// `specs/vectors/oid4vci.json`, made with joserfc (`tests/make_oid4vci_vectors.py`).
    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../../../specs/vectors/oid4vci.json")).unwrap()
    }

    /// The key of a did:jwk DID URL (the vectors' holders).
    fn did_jwk_key(kid: &str) -> Result<PublicJwk, String> {
        let b64 = kid
            .strip_prefix("did:jwk:")
            .and_then(|r| r.split('#').next())
            .ok_or("not did:jwk")?;
        let jwk: Value = serde_json::from_slice(
            &BASE64_URL_SAFE_NO_PAD
                .decode(b64)
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        PublicJwk::from_json(&jwk).map_err(|e| e.to_string())
    }

    #[test]
    fn key_proofs_made_by_joserfc_verify() {
        let v = vectors();
        let aud = v["aud"].as_str().unwrap();
        let iat = v["iat"].as_i64().unwrap();
        for p in v["proofs"].as_array().unwrap() {
            let got = check_proof_jwt(p["jwt"].as_str().unwrap(), aud, iat + 10, did_jwk_key)
                .unwrap_or_else(|e| panic!("{e}: {p}"));
            assert_eq!(
                got,
                KeyProof {
                    holder: p["holder"].as_str().unwrap().to_owned(),
                    nonce: Some("c-nonce-vector".into()),
                }
            );
        }
    }

    #[test]
    fn key_proofs_are_refused_with_invalid_proof() {
        let v = vectors();
        let aud = v["aud"].as_str().unwrap();
        let iat = v["iat"].as_i64().unwrap();
        let good = v["proofs"][0]["jwt"].as_str().unwrap();
        let other = v["proofs"][1]["holder"].as_str().unwrap().to_owned();
        let b64 = |s: &str| BASE64_URL_SAFE_NO_PAD.encode(s);
        let payload = good.split('.').nth(1).unwrap();
        let forged = |header: &str| format!("{}.{payload}.{}", b64(header), b64("sig"));
        let kid = format!("{}#0", v["proofs"][0]["holder"].as_str().unwrap());
        let cases: Vec<(String, String, i64, &str)> = vec![
            (good.into(), "https://other.example".into(), iat, "aud"),
            (good.into(), aud.into(), iat + 301, "iat"),
            (good.into(), aud.into(), iat - 61, "iat"),
            (
                v["proof_with_jwk"]["jwt"].as_str().unwrap().into(),
                aud.into(),
                iat,
                "jwk",
            ),
            (
                v["proof_wrong_typ"]["jwt"].as_str().unwrap().into(),
                aud.into(),
                iat,
                "typ",
            ),
            // Algorithm confusion: none, and HMAC with the public key as the secret.
            (
                forged(&format!(
                    r#"{{"alg":"none","typ":"{PROOF_JWT_TYPE}","kid":"{kid}"}}"#
                )),
                aud.into(),
                iat,
                "alg",
            ),
            (
                forged(&format!(
                    r#"{{"alg":"HS256","typ":"{PROOF_JWT_TYPE}","kid":"{kid}"}}"#
                )),
                aud.into(),
                iat,
                "alg",
            ),
            (
                forged(&format!(
                    r#"{{"alg":"ES256","typ":"{PROOF_JWT_TYPE}","kid":"did:example:x#0"}}"#
                )),
                aud.into(),
                iat,
                "methods",
            ),
            (
                forged(&format!(
                    r#"{{"alg":"ES256","typ":"{PROOF_JWT_TYPE}","kid":"{kid}"}}"#
                )),
                aud.into(),
                iat,
                "signature",
            ),
            (
                forged(&format!(r#"{{"alg":"ES256","typ":"{PROOF_JWT_TYPE}"}}"#)),
                aud.into(),
                iat,
                "kid",
            ),
        ];
        for (jwt, aud, now, why) in cases {
            let e = check_proof_jwt(&jwt, &aud, now, did_jwk_key).unwrap_err();
            assert_eq!(e.error, "invalid_proof", "{why}: {e}");
            assert!(e.description.contains(why), "{why}: {e}");
        }
        // Signed by another key than the kid's.
        let e =
            check_proof_jwt(good, aud, iat, |_| did_jwk_key(&format!("{other}#0"))).unwrap_err();
        assert_eq!(e.error, "invalid_proof", "{e}");
    }
}
