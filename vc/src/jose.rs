//! Credentials secured with JOSE: a compact JWS signed with EdDSA (Ed25519).
//!
//! Two shapes are read (spec: `specs/credentials.md` §8):
//! - **VC 2.0** ([VC-JOSE-COSE](https://www.w3.org/TR/vc-jose-cose/)): `typ` `vc+jwt`, and the
//!   payload *is* the credential. This is what knoop issues.
//! - **VC 1.1** ([VC Data Model 1.1 §6.3](https://www.w3.org/TR/vc-data-model-1.1/#json-web-token)):
//!   the credential sits in the `vc` claim and `iss`, `jti`, `sub`, `nbf`, `exp` stand for
//!   `issuer`, `id`, `credentialSubject.id`, `issuanceDate` and `expirationDate`.
//!
//! The JWS structure, header and base64url handling are ssi's (`ssi-jws`); the signature is
//! checked here with `ed25519-dalek`'s strict verification, the same as Data Integrity proofs.
//! Only `EdDSA` is accepted; a header that names its own key (`jwk`, `jku`, `x5u`, `x5c`) or
//! carries `crit` parameters is refused: the key is always the issuer DID's `kid`.

use std::borrow::Cow;

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use ssi::claims::jws::{Header, JwsStr};
use ssi::jwk::Algorithm;

use crate::xsd::parse_date_time_stamp;

/// Largest compact JWS accepted (bytes).
pub const MAX_JWT_BYTES: usize = 256 * 1024;
/// `typ` of a VC 2.0 JOSE credential.
pub const VC_JWT_TYPE: &str = "vc+jwt";
/// Media type of a JOSE-secured credential; also the prefix of an enveloped credential's
/// `data:` URL.
pub const VC_JWT_MEDIA_TYPE: &str = "application/vc+jwt";

/// Why a JOSE credential could not be read or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseError {
    #[error("not a compact JWS: {0}")]
    Malformed(String),
    #[error("the JWS is larger than {MAX_JWT_BYTES} bytes")]
    TooLarge,
    #[error("unsupported JWS algorithm {0} (only EdDSA)")]
    Algorithm(String),
    #[error("JWS header: {0}")]
    Header(String),
    #[error("the JWS payload is not a credential: {0}")]
    Payload(String),
    #[error("the JWS signature does not verify")]
    BadSignature,
    #[error("signing: {0}")]
    Sign(String),
}

/// Which shape the JWT had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtShape {
    /// VC-JOSE-COSE: the payload is the credential.
    Vc2,
    /// VC 1.1 JWT: the credential is the `vc` claim.
    Vc11,
}

/// A decoded (not yet verified) JOSE credential.
#[derive(Clone, Debug)]
pub struct JwtCredential {
    /// The credential, with the VC 1.1 registered claims mapped onto it.
    pub credential: Value,
    /// The header's `kid`: the verification method.
    pub kid: String,
    /// `iat` in Unix ms, if present.
    pub issued_at_ms: Option<i64>,
    /// `exp` in Unix ms, if present.
    pub expires_ms: Option<i64>,
    /// `nbf` in Unix ms, if present.
    pub not_before_ms: Option<i64>,
    pub shape: JwtShape,
    signing_input: Vec<u8>,
    signature: [u8; 64],
}

impl JwtCredential {
    /// Checks the signature with the issuer's key (strict Ed25519).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), JoseError> {
        key.verify_strict(&self.signing_input, &Signature::from_bytes(&self.signature))
            .map_err(|_| JoseError::BadSignature)
    }
}

/// The JWT in `v`, if `v` is a JOSE credential: a compact JWS string, or a VC 2.0
/// `EnvelopedVerifiableCredential` whose `id` is a `data:application/vc+jwt,` URL.
pub fn jwt_of(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => {
            let enveloped = match o.get("type") {
                Some(Value::String(t)) => t == "EnvelopedVerifiableCredential",
                Some(Value::Array(a)) => a.iter().any(|t| t == "EnvelopedVerifiableCredential"),
                _ => false,
            };
            if !enveloped {
                return None;
            }
            o.get("id")?
                .as_str()?
                .strip_prefix("data:")?
                .strip_prefix(VC_JWT_MEDIA_TYPE)?
                .strip_prefix(',')
        }
        _ => None,
    }
}

/// Wraps a JWT as a VC 2.0 enveloped credential, for a presentation.
pub fn envelope(jwt: &str) -> Value {
    serde_json::json!({
        "@context": [crate::types::CREDENTIALS_V2],
        "id": format!("data:{VC_JWT_MEDIA_TYPE},{jwt}"),
        "type": "EnvelopedVerifiableCredential",
    })
}

fn seconds_claim(o: &Map<String, Value>, name: &str) -> Result<Option<i64>, JoseError> {
    match o.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .and_then(|s| s.checked_mul(1000))
            .map(Some)
            .ok_or_else(|| JoseError::Payload(format!("{name} must be a NumericDate"))),
    }
}

fn rfc3339(ms: i64) -> Result<String, JoseError> {
    u64::try_from(ms)
        .ok()
        .map(|ms| knoop_did::knoop::time::to_rfc3339(ms / 1000 * 1000))
        .ok_or_else(|| JoseError::Payload(format!("time {ms} ms out of range")))
}

/// Maps the VC 1.1 registered claims onto the `vc` claim (VC Data Model 1.1 §6.3.1,
/// "decoding"); a claim and its property must agree when both are present.
fn credential_from_vc11(
    claims: &Map<String, Value>,
    nbf: Option<i64>,
    exp: Option<i64>,
) -> Result<Value, JoseError> {
    let Some(Value::Object(vc)) = claims.get("vc") else {
        return Err(JoseError::Payload("the vc claim must be an object".into()));
    };
    let mut vc = vc.clone();
    fn put(vc: &mut Map<String, Value>, field: &str, value: Value) -> Result<(), JoseError> {
        match vc.get(field) {
            Some(existing) if *existing != value => Err(JoseError::Payload(format!(
                "{field} disagrees with its JWT claim"
            ))),
            _ => {
                vc.insert(field.into(), value);
                Ok(())
            }
        }
    }
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        match vc.get_mut("issuer") {
            Some(Value::Object(i)) => {
                if i.get("id").is_some_and(|id| id != iss) {
                    return Err(JoseError::Payload("issuer disagrees with iss".into()));
                }
                i.insert("id".into(), iss.into());
            }
            _ => put(&mut vc, "issuer", iss.into())?,
        }
    }
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        put(&mut vc, "id", jti.into())?;
    }
    if let Some(ms) = nbf {
        // Second precision on both sides: `nbf` is a NumericDate.
        if !vc.contains_key("issuanceDate") {
            put(&mut vc, "issuanceDate", rfc3339(ms)?.into())?;
        }
    }
    if let Some(ms) = exp {
        if !vc.contains_key("expirationDate") {
            put(&mut vc, "expirationDate", rfc3339(ms)?.into())?;
        }
    }
    if let Some(sub) = claims.get("sub").and_then(Value::as_str) {
        match vc.get_mut("credentialSubject") {
            Some(Value::Object(s)) => {
                if s.get("id").is_some_and(|id| id != sub) {
                    return Err(JoseError::Payload(
                        "credentialSubject.id disagrees with sub".into(),
                    ));
                }
                s.insert("id".into(), sub.into());
            }
            _ => {
                return Err(JoseError::Payload(
                    "sub needs one credentialSubject object".into(),
                ))
            }
        }
    }
    Ok(Value::Object(vc))
}

/// Decodes a JOSE credential without verifying it.
pub fn decode(jwt: &str) -> Result<JwtCredential, JoseError> {
    if jwt.len() > MAX_JWT_BYTES {
        return Err(JoseError::TooLarge);
    }
    let jws = JwsStr::new(jwt).map_err(|_| JoseError::Malformed("three base64url parts".into()))?;
    let decoded = jws
        .decode()
        .map_err(|e| JoseError::Malformed(e.to_string()))?;
    let header: &Header = decoded.header();
    check_header(header)?;
    let kid = header
        .key_id
        .clone()
        .ok_or_else(|| JoseError::Header("kid is required".into()))?;
    let signature: [u8; 64] = decoded
        .signature
        .as_bytes()
        .try_into()
        .map_err(|_| JoseError::Malformed("an Ed25519 signature is 64 bytes".into()))?;
    let payload: Value = serde_json::from_slice(&decoded.signing_bytes.payload)
        .map_err(|e| JoseError::Payload(e.to_string()))?;
    let Value::Object(claims) = payload else {
        return Err(JoseError::Payload("not a JSON object".into()));
    };
    let issued_at_ms = seconds_claim(&claims, "iat")?;
    let expires_ms = seconds_claim(&claims, "exp")?;
    let not_before_ms = seconds_claim(&claims, "nbf")?;
    let (credential, shape) = if claims.contains_key("vc") {
        (
            credential_from_vc11(&claims, not_before_ms, expires_ms)?,
            JwtShape::Vc11,
        )
    } else {
        if header.type_.as_deref().is_some_and(|t| t != VC_JWT_TYPE) {
            return Err(JoseError::Header(format!("typ must be {VC_JWT_TYPE}")));
        }
        (Value::Object(claims), JwtShape::Vc2)
    };
    Ok(JwtCredential {
        credential,
        kid,
        issued_at_ms,
        expires_ms,
        not_before_ms,
        shape,
        signing_input: jws.signing_bytes().to_vec(),
        signature,
    })
}

fn check_header(h: &Header) -> Result<(), JoseError> {
    if h.algorithm != Algorithm::EdDSA {
        return Err(JoseError::Algorithm(h.algorithm.to_string()));
    }
    if h.jwk.is_some()
        || h.jwk_set_url.is_some()
        || h.x509_url.is_some()
        || h.x509_certificate_chain.is_some()
    {
        return Err(JoseError::Header(
            "the key comes from the issuer's DID (kid), not from the header".into(),
        ));
    }
    if h.critical.is_some() || h.base64urlencode_payload.is_some() {
        return Err(JoseError::Header("crit and b64 are not supported".into()));
    }
    Ok(())
}

/// Signs `credential` (VC 2.0, unsecured) as a `vc+jwt` with the issuer's key `kid`. `iat` is
/// the credential's `validFrom` when it has one, so the issuer's key is checked at issuance.
pub fn sign(credential: &Value, kid: &str, key: &SigningKey) -> Result<String, JoseError> {
    let Value::Object(claims) = credential else {
        return Err(JoseError::Payload("not a JSON object".into()));
    };
    if claims.contains_key("proof") {
        return Err(JoseError::Payload(
            "a credential secured with JOSE carries no embedded proof".into(),
        ));
    }
    let mut claims = claims.clone();
    if let Some(t) = claims
        .get("validFrom")
        .and_then(Value::as_str)
        .and_then(parse_date_time_stamp)
    {
        claims.insert("iat".into(), (t.unix_ms().div_euclid(1000)).into());
    }
    let header = Header {
        algorithm: Algorithm::EdDSA,
        key_id: Some(kid.to_owned()),
        type_: Some(VC_JWT_TYPE.into()),
        content_type: Some("vc".into()),
        ..Default::default()
    };
    let payload =
        serde_json::to_vec(&Value::Object(claims)).map_err(|e| JoseError::Sign(e.to_string()))?;
    let signing_input = header.encode_signing_bytes(&payload);
    let signature = key.sign(&signing_input);
    let mut out = String::from_utf8(signing_input).map_err(|e| JoseError::Sign(e.to_string()))?;
    out.push('.');
    out.push_str(&BASE64_URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    Ok(out)
}

/// The credential inside `v` without verifying anything: the JWT's credential for a JOSE
/// credential, else `v` itself.
pub fn unverified_credential(v: &Value) -> Cow<'_, Value> {
    match jwt_of(v).map(decode) {
        Some(Ok(j)) => Cow::Owned(j.credential),
        _ => Cow::Borrowed(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn vc() -> Value {
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": "urn:uuid:1",
            "type": ["VerifiableCredential"],
            "issuer": "did:key:z6Mk",
            "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:a"},
        })
    }

    #[test]
    fn signs_and_reads_back() {
        let jwt = sign(&vc(), "did:key:z6Mk#z6Mk", &key()).unwrap();
        let j = decode(&jwt).unwrap();
        assert_eq!(j.kid, "did:key:z6Mk#z6Mk");
        assert_eq!(j.shape, JwtShape::Vc2);
        assert_eq!(j.issued_at_ms, Some(1_767_225_600_000));
        assert_eq!(j.credential["id"], "urn:uuid:1");
        j.verify_signature(&key().verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(j.verify_signature(&other), Err(JoseError::BadSignature));
        // Enveloped, it reads the same.
        assert_eq!(jwt_of(&envelope(&jwt)), Some(jwt.as_str()));
    }

    #[test]
    fn tampering_and_foreign_headers_are_refused() {
        let jwt = sign(&vc(), "did:key:z6Mk#z6Mk", &key()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut claims: Value =
            serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["credentialSubject"]["id"] = "did:example:mallory".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            BASE64_URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        let j = decode(&forged).unwrap();
        assert_eq!(
            j.verify_signature(&key().verifying_key()),
            Err(JoseError::BadSignature)
        );
        for header in [
            r#"{"alg":"HS256","kid":"k"}"#,
            r#"{"alg":"none","kid":"k"}"#,
            r#"{"alg":"EdDSA","kid":"k","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}"#,
            r#"{"alg":"EdDSA","kid":"k","crit":["exp"]}"#,
            r#"{"alg":"EdDSA"}"#,
        ] {
            let h = BASE64_URL_SAFE_NO_PAD.encode(header);
            let t = format!("{h}.{}.{}", parts[1], parts[2]);
            assert!(decode(&t).is_err(), "{header}");
        }
        assert!(matches!(decode("a.b"), Err(JoseError::Malformed(_))));
        assert_eq!(
            decode(&"a".repeat(MAX_JWT_BYTES + 1)).unwrap_err(),
            JoseError::TooLarge
        );
    }

    #[test]
    fn vc11_claims_map_onto_the_credential() {
        let payload = serde_json::json!({
            "iss": "did:example:issuer", "jti": "urn:uuid:2", "sub": "did:example:s",
            "nbf": 1_767_225_600, "exp": 1_798_761_600,
            "vc": {
                "@context": ["https://www.w3.org/2018/credentials/v1"],
                "type": ["VerifiableCredential"],
                "credentialSubject": {"degree": "x"},
            },
        });
        let header = BASE64_URL_SAFE_NO_PAD
            .encode(r#"{"alg":"EdDSA","kid":"did:example:issuer#k","typ":"JWT"}"#);
        let body = BASE64_URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let input = format!("{header}.{body}");
        let sig = key().sign(input.as_bytes());
        let jwt = format!("{input}.{}", BASE64_URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let j = decode(&jwt).unwrap();
        assert_eq!(j.shape, JwtShape::Vc11);
        j.verify_signature(&key().verifying_key()).unwrap();
        let c = &j.credential;
        assert_eq!(c["issuer"], "did:example:issuer");
        assert_eq!(c["id"], "urn:uuid:2");
        assert_eq!(c["credentialSubject"]["id"], "did:example:s");
        assert_eq!(c["issuanceDate"], "2026-01-01T00:00:00Z");
        assert_eq!(c["expirationDate"], "2027-01-01T00:00:00Z");
    }
}
