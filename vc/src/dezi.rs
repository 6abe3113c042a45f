//! The national guide's `DeziUserCredential` (spec: `specs/credentials.md` §10): a credential
//! that wraps the signed "verklaring" (attestation) a care professional's Dezi login gives, so
//! it can travel in a presentation with the organisation's credentials. Its proof is the Dezi
//! JWT itself (`DeziIDJWT07`): the JWT is checked with a key of the Dezi key set its `jku`
//! names (the caller supplies the key sets it trusts, fetched beforehand), and every claim of
//! the credential must equal its source in the JWT. No IO.

use serde_json::Value;

use crate::jws::{Compact, PublicJwk};
use crate::xsd::parse_date_time_stamp;

/// The credential type.
pub const DEZI_USER_CREDENTIAL: &str = "DeziUserCredential";
/// The proof type: a Dezi attestation JWT of the 0.7 vendor specification.
pub const PROOF_TYPE: &str = "DeziIDJWT07";

/// Why a Dezi credential does not verify.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeziError {
    #[error("the proof must be {PROOF_TYPE} with the Dezi JWT")]
    Proof,
    #[error("the Dezi JWT: {0}")]
    Jwt(String),
    #[error("the Dezi key set {0}: {1}")]
    KeySet(String, String),
    #[error("the Dezi JWT is not valid now")]
    Time,
    #[error("{0} does not match the Dezi JWT")]
    Mismatch(&'static str),
}

/// A Dezi key set: `(kid, key)` pairs.
pub type KeySet = Vec<(Option<String>, PublicJwk)>;

/// The `jku` of the Dezi JWT in `credential` (unverified), for fetching its key set first.
pub fn key_set_url(credential: &Value) -> Option<String> {
    let jwt = credential.get("proof")?.get("jwt")?.as_str()?;
    Compact::parse(jwt)
        .ok()?
        .header_str("jku")
        .map(str::to_owned)
}

/// Reads a JWK Set (RFC 7517 §5): the keys knoop can use, with their `kid`; others are skipped.
pub fn parse_key_set(v: &Value) -> Result<KeySet, String> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWK Set has a keys array")?;
    Ok(keys
        .iter()
        .filter_map(|k| {
            let key = PublicJwk::from_json(k).ok()?;
            Some((k.get("kid").and_then(Value::as_str).map(str::to_owned), key))
        })
        .collect())
}

/// Whether `credential` claims to be a Dezi credential.
pub fn is_dezi(credential: &Value) -> bool {
    match credential.get("type") {
        Some(Value::Array(a)) => a.iter().any(|t| t == DEZI_USER_CREDENTIAL),
        Some(t) => t == DEZI_USER_CREDENTIAL,
        None => false,
    }
}

/// The `DeziUserCredential` of `holder` (a DID) that wraps the Dezi attestation `jwt` (the
/// `id_token` an EHR has from a Dezi login): every claim taken from the JWT as [`verify`]
/// compares them, the JWT as its proof. Nothing is verified here: the verifier does that.
pub fn credential_of(jwt: &str, holder: &str) -> Result<Value, DeziError> {
    let jws = Compact::parse(jwt).map_err(|e| DeziError::Jwt(e.to_string()))?;
    let claims = jws.claims().map_err(|e| DeziError::Jwt(e.to_string()))?;
    let verklaring = claims.get("verklaring").and_then(Value::as_object);
    let text = |name: &str| {
        verklaring
            .and_then(|v| v.get(name))
            .or_else(|| claims.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| knoop_did::knoop::time::to_rfc3339(s * 1000))
            .ok_or_else(|| DeziError::Jwt(format!("{name} is required")))
    };
    let iss = text("iss").ok_or_else(|| DeziError::Jwt("iss is required".into()))?;
    let issuer = if iss.starts_with("did:") {
        iss
    } else {
        format!("did:web:{iss}")
    };
    let mut employee = serde_json::Map::new();
    for (field, claim) in [
        ("identifier", "dezi_nummer"),
        ("initials", "voorletters"),
        ("surnamePrefix", "voorvoegsel"),
        ("surname", "achternaam"),
        ("role", "rol_code"),
        ("role_name", "rol_naam"),
        ("role_registry", "rol_code_bron"),
    ] {
        if let Some(v) = text(claim) {
            employee.insert(field.to_owned(), Value::String(v));
        }
    }
    let mut subject = serde_json::json!({"id": holder, "employee": employee});
    for (field, claim) in [("identifier", "abonnee_nummer"), ("name", "abonnee_naam")] {
        if let Some(v) = text(claim) {
            subject[field] = Value::String(v);
        }
    }
    Ok(serde_json::json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", DEZI_USER_CREDENTIAL],
        "issuer": issuer,
        "validFrom": time("nbf")?,
        "validUntil": time("exp")?,
        "credentialSubject": subject,
        "proof": {"type": PROOF_TYPE, "jwt": jwt},
    }))
}

/// Verifies the Dezi JWT of `credential` with `key_set` (the key set its `jku` names, which the
/// caller trusts and fetched), at `now_s`, and that the credential says what the JWT says.
/// Returns the `jku`.
pub fn verify(
    credential: &Value,
    key_set: &dyn Fn(&str) -> Result<KeySet, String>,
    now_s: i64,
) -> Result<String, DeziError> {
    let proof = credential.get("proof").ok_or(DeziError::Proof)?;
    if proof.get("type").and_then(Value::as_str) != Some(PROOF_TYPE) {
        return Err(DeziError::Proof);
    }
    let jwt = proof
        .get("jwt")
        .and_then(Value::as_str)
        .ok_or(DeziError::Proof)?;
    let jws = Compact::parse(jwt).map_err(|e| DeziError::Jwt(e.to_string()))?;
    let jku = jws
        .header_str("jku")
        .ok_or_else(|| DeziError::Jwt("jku is required".into()))?
        .to_owned();
    let keys = key_set(&jku).map_err(|e| DeziError::KeySet(jku.clone(), e))?;
    let kid = jws.header_str("kid");
    let candidates: Vec<&PublicJwk> = keys
        .iter()
        .filter(|(k, _)| kid.is_none() || k.as_deref() == kid)
        .map(|(_, key)| key)
        .collect();
    if candidates.is_empty() {
        return Err(DeziError::KeySet(jku, "no key with the JWT's kid".into()));
    }
    if !candidates.iter().any(|k| jws.verify(k).is_ok()) {
        return Err(DeziError::Jwt("the signature does not verify".into()));
    }
    let claims = jws.claims().map_err(|e| DeziError::Jwt(e.to_string()))?;
    let int = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(nbf), Some(exp)) = (int("nbf"), int("exp")) else {
        return Err(DeziError::Jwt("nbf and exp are required".into()));
    };
    if now_s < nbf || now_s >= exp {
        return Err(DeziError::Time);
    }
    // The attestation's own fields, in `verklaring` or at the top level.
    let verklaring = claims.get("verklaring").and_then(Value::as_object);
    let jwt_text = |name: &str| {
        verklaring
            .and_then(|v| v.get(name))
            .or_else(|| claims.get(name))
            .filter(|v| !v.is_null())
            .and_then(Value::as_str)
    };
    let subject = credential.get("credentialSubject");
    let employee = subject.and_then(|s| s.get("employee"));
    fn vc_text<'a>(v: Option<&'a Value>, name: &str) -> Option<&'a str> {
        v.and_then(|o| o.get(name))
            .filter(|v| !v.is_null())
            .and_then(Value::as_str)
    }
    let pairs: [(&'static str, Option<&str>, Option<&str>); 10] = [
        (
            "credentialSubject.identifier",
            vc_text(subject, "identifier"),
            jwt_text("abonnee_nummer"),
        ),
        (
            "credentialSubject.name",
            vc_text(subject, "name"),
            jwt_text("abonnee_naam"),
        ),
        (
            "employee.identifier",
            vc_text(employee, "identifier"),
            jwt_text("dezi_nummer"),
        ),
        (
            "employee.initials",
            vc_text(employee, "initials"),
            jwt_text("voorletters"),
        ),
        (
            "employee.surnamePrefix",
            vc_text(employee, "surnamePrefix"),
            jwt_text("voorvoegsel"),
        ),
        (
            "employee.surname",
            vc_text(employee, "surname"),
            jwt_text("achternaam"),
        ),
        (
            "employee.role",
            vc_text(employee, "role"),
            jwt_text("rol_code"),
        ),
        (
            "employee.role_name",
            vc_text(employee, "role_name"),
            jwt_text("rol_naam"),
        ),
        (
            "employee.role_registry",
            vc_text(employee, "role_registry"),
            jwt_text("rol_code_bron"),
        ),
        ("issuer", issuer_name(credential), jwt_text("iss")),
    ];
    for (name, in_vc, in_jwt) in pairs {
        if in_vc != in_jwt {
            return Err(DeziError::Mismatch(name));
        }
    }
    // Required besides: who, and for which organisation.
    for (name, v) in [
        (
            "credentialSubject.identifier",
            vc_text(subject, "identifier"),
        ),
        ("employee.identifier", vc_text(employee, "identifier")),
    ] {
        if v.is_none_or(str::is_empty) {
            return Err(DeziError::Mismatch(name));
        }
    }
    let seconds = |field: &str| {
        credential
            .get(field)
            .and_then(Value::as_str)
            .and_then(parse_date_time_stamp)
            .map(|t| t.unix_ms().div_euclid(1000))
    };
    if seconds("validFrom") != Some(nbf) {
        return Err(DeziError::Mismatch("validFrom"));
    }
    if seconds("validUntil") != Some(exp) {
        return Err(DeziError::Mismatch("validUntil"));
    }
    Ok(jku)
}

/// The issuer as the Dezi JWT names it: the `iss` itself, or the host of a `did:web` of it.
fn issuer_name(credential: &Value) -> Option<&str> {
    let issuer = match credential.get("issuer")? {
        Value::Object(o) => o.get("id")?.as_str()?,
        v => v.as_str()?,
    };
    Some(issuer.strip_prefix("did:web:").unwrap_or(issuer))
}

#[cfg(test)]
mod tests;
