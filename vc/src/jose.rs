//! Credentials secured with JOSE: a compact JWS (`specs/jose.md`) signed with the issuer's key.
//!
//! Two shapes are read (spec: `specs/credentials.md` §8):
//! - **VC 2.0** ([VC-JOSE-COSE](https://www.w3.org/TR/vc-jose-cose/)): `typ` `vc+jwt`, and the
//!   payload *is* the credential. This is what knoop issues.
//! - **VC 1.1** ([VC Data Model 1.1 §6.3](https://www.w3.org/TR/vc-data-model-1.1/#json-web-token)):
//!   the credential sits in the `vc` claim and `iss`, `jti`, `sub`, `nbf`, `exp` stand for
//!   `issuer`, `id`, `credentialSubject.id`, `issuanceDate` and `expirationDate`.
//!
//! The JWS is read by [`crate::jws`]: the algorithms of `specs/jose.md` §2 (`EdDSA`, `ES256`,
//! `ES384`, `RS256`, `PS256`), each only with a key of its type. A header that names its own key
//! (`jwk`, `jku`, `x5u`, `x5c`) is refused: the key is always the issuer DID's `kid`. The one
//! exception is `x5c` for a `did:x509` issuer: the chain is what that DID resolves with
//! (`specs/did-x509.md`), and the key is still the DID's.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::jws::{Compact, JwsError, PublicJwk, SigningKey};
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
    #[error("{0}")]
    Jws(JwsError),
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
    /// The `x5c` chain (DER, leaf first) of a `did:x509` issuer.
    pub x5c: Vec<Vec<u8>>,
    jws: Compact,
}

impl JwtCredential {
    /// The JWS algorithm.
    pub fn alg(&self) -> crate::jws::Alg {
        self.jws.alg
    }

    /// Checks the signature with the issuer's key.
    pub fn verify_signature(&self, key: &PublicJwk) -> Result<(), JoseError> {
        self.jws.verify(key).map_err(|e| match e {
            JwsError::BadSignature => JoseError::BadSignature,
            e => JoseError::Jws(e),
        })
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
    let jws = Compact::parse(jwt).map_err(|e| match e {
        JwsError::Malformed(m) => JoseError::Malformed(m),
        e => JoseError::Jws(e),
    })?;
    let kid = jws
        .header_str("kid")
        .ok_or_else(|| JoseError::Header("kid is required".into()))?
        .to_owned();
    let x5c = check_header(&jws, &kid)?;
    let payload: Value =
        serde_json::from_slice(&jws.payload).map_err(|e| JoseError::Payload(e.to_string()))?;
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
        if jws.header_str("typ").is_some_and(|t| t != VC_JWT_TYPE) {
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
        x5c,
        jws,
    })
}

/// Header members that name a key: refused, the key is the issuer DID's `kid`.
const KEY_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// Checks the key headers; returns the `x5c` chain of a `did:x509` `kid` (standard base64 DER
/// certificates, RFC 7515 §4.1.6).
fn check_header(jws: &Compact, kid: &str) -> Result<Vec<Vec<u8>>, JoseError> {
    use base64::prelude::{Engine, BASE64_STANDARD};
    let x509 = kid.starts_with("did:x509:");
    if let Some(h) = KEY_HEADERS
        .iter()
        .find(|h| jws.header.contains_key(**h) && !(x509 && **h == "x5c"))
    {
        return Err(JoseError::Header(format!(
            "{h}: the key comes from the issuer's DID (kid), not from the header"
        )));
    }
    if !x509 {
        return Ok(Vec::new());
    }
    let chain = jws
        .header
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| JoseError::Header("a did:x509 issuer needs its chain in x5c".into()))?;
    chain
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|c| BASE64_STANDARD.decode(c).ok())
                .ok_or_else(|| JoseError::Header("x5c holds base64 certificates".into()))
        })
        .collect()
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
    let mut header = Map::new();
    header.insert("kid".into(), kid.into());
    header.insert("typ".into(), VC_JWT_TYPE.into());
    header.insert("cty".into(), "vc".into());
    let payload =
        serde_json::to_vec(&Value::Object(claims)).map_err(|e| JoseError::Sign(e.to_string()))?;
    Ok(key.sign_compact(header, &payload))
}

/// Signs `credential` (VC 2.0, unsecured) as a VC Data Model 1.1 JWT (§6.3.1), the format of
/// the national guide's credential catalog: `@context` with the 1.1 base context, the
/// registered claims `iss`, `jti`, `sub`, `nbf` (= `iat`, from `validFrom`) and `exp` (from
/// `validUntil`), and the rest in `vc`. Header `{"alg", "kid", "typ": "JWT"}`.
pub fn sign_vc11(credential: &Value, kid: &str, key: &SigningKey) -> Result<String, JoseError> {
    let Value::Object(c) = credential else {
        return Err(JoseError::Payload("not a JSON object".into()));
    };
    if c.contains_key("proof") {
        return Err(JoseError::Payload(
            "a credential secured with JOSE carries no embedded proof".into(),
        ));
    }
    let seconds = |field: &str| {
        c.get(field)
            .and_then(Value::as_str)
            .and_then(parse_date_time_stamp)
            .map(|t| t.unix_ms().div_euclid(1000))
    };
    let nbf =
        seconds("validFrom").ok_or_else(|| JoseError::Payload("validFrom is required".into()))?;
    let mut vc = Map::new();
    let contexts: Vec<Value> = c
        .get("@context")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ctx| {
            if ctx == crate::types::CREDENTIALS_V2 {
                Value::from(crate::model::CREDENTIALS_V1_CONTEXT)
            } else {
                ctx.clone()
            }
        })
        .collect();
    vc.insert("@context".into(), contexts.into());
    for field in ["type", "credentialSubject", "credentialStatus"] {
        if let Some(v) = c.get(field) {
            vc.insert(field.into(), v.clone());
        }
    }
    let mut claims = Map::new();
    if let Some(iss) = c.get("issuer") {
        claims.insert("iss".into(), iss.get("id").unwrap_or(iss).clone());
    }
    if let Some(id) = c.get("id") {
        claims.insert("jti".into(), id.clone());
    }
    if let Some(sub) = c.get("credentialSubject").and_then(|s| s.get("id")) {
        claims.insert("sub".into(), sub.clone());
    }
    claims.insert("nbf".into(), nbf.into());
    claims.insert("iat".into(), nbf.into());
    if let Some(exp) = seconds("validUntil") {
        claims.insert("exp".into(), exp.into());
    }
    claims.insert("vc".into(), Value::Object(vc));
    let mut header = Map::new();
    header.insert("kid".into(), kid.into());
    header.insert("typ".into(), "JWT".into());
    let payload =
        serde_json::to_vec(&Value::Object(claims)).map_err(|e| JoseError::Sign(e.to_string()))?;
    Ok(key.sign_compact(header, &payload))
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

    use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
    use ed25519_dalek::Signer;

    fn ed_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn key() -> SigningKey {
        SigningKey::Ed25519(ed_key())
    }

    fn public(k: &ed25519_dalek::SigningKey) -> PublicJwk {
        PublicJwk::Ed25519(k.verifying_key())
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
        j.verify_signature(&key().public_jwk()).unwrap();
        let other = public(&ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
        assert_eq!(j.verify_signature(&other), Err(JoseError::BadSignature));
        // An ES256 issuer's credential reads and verifies the same way, and not as EdDSA.
        let p256 = SigningKey::generate_p256();
        let j = decode(&sign(&vc(), "did:key:zDn#zDn", &p256).unwrap()).unwrap();
        j.verify_signature(&p256.public_jwk()).unwrap();
        assert!(matches!(
            j.verify_signature(&key().public_jwk()),
            Err(JoseError::Jws(JwsError::KeyMismatch { .. }))
        ));
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
            j.verify_signature(&key().public_jwk()),
            Err(JoseError::BadSignature)
        );
        for header in [
            r#"{"alg":"HS256","kid":"k"}"#,
            r#"{"alg":"none","kid":"k"}"#,
            r#"{"alg":"EdDSA","kid":"k","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}"#,
            r#"{"alg":"EdDSA","kid":"k","crit":["exp"]}"#,
            r#"{"alg":"EdDSA","kid":"k","x5c":["MIIB"]}"#,
            r#"{"alg":"EdDSA","kid":"k","jku":"https://evil.example/keys"}"#,
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
    fn vc11_jwts_are_issued_as_the_catalog_says() {
        let mut v = vc();
        v["validUntil"] = "2027-01-01T00:00:00Z".into();
        let key = SigningKey::generate_p256();
        let jwt = sign_vc11(&v, "did:key:z6Mk#z6Mk", &key).unwrap();
        let header: Value = serde_json::from_slice(
            &BASE64_URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "JWT");
        let j = decode(&jwt).unwrap();
        assert_eq!(j.shape, JwtShape::Vc11);
        j.verify_signature(&key.public_jwk()).unwrap();
        let c = &j.credential;
        assert_eq!(c["@context"][0], crate::model::CREDENTIALS_V1_CONTEXT);
        assert_eq!(c["issuer"], "did:key:z6Mk");
        assert_eq!(c["id"], "urn:uuid:1");
        assert_eq!(c["issuanceDate"], "2026-01-01T00:00:00Z");
        assert_eq!(c["expirationDate"], "2027-01-01T00:00:00Z");
        assert_eq!(c["credentialSubject"]["id"], "did:example:a");
        crate::model::check_credential(c, crate::model::Strictness::Issued).unwrap();
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
        let sig = ed_key().sign(input.as_bytes());
        let jwt = format!("{input}.{}", BASE64_URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let j = decode(&jwt).unwrap();
        assert_eq!(j.shape, JwtShape::Vc11);
        j.verify_signature(&key().public_jwk()).unwrap();
        let c = &j.credential;
        assert_eq!(c["issuer"], "did:example:issuer");
        assert_eq!(c["id"], "urn:uuid:2");
        assert_eq!(c["credentialSubject"]["id"], "did:example:s");
        assert_eq!(c["issuanceDate"], "2026-01-01T00:00:00Z");
        assert_eq!(c["expirationDate"], "2027-01-01T00:00:00Z");
    }
}
