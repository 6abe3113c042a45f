//! Verifiable presentations: a holder presents credentials to a verifier, bound to the
//! verifier's `challenge` and `domain` so the presentation cannot be replayed elsewhere
//! ([`present`], [`verify_presentation`]: Data Integrity), or as a VC Data Model 1.1 JWT bound to
//! the verifier by `aud` and made unique by `jti` ([`present_jwt`], [`verify_presentation_jwt`],
//! `specs/credentials.md` §7a: the assertion of an RFC 7523 token request).

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::contexts::Contexts;
use crate::model::{check_presentation, ModelError};
use crate::proof::{sign, Cryptosuite, ProofError, ProofOptions};
use crate::types::CREDENTIALS_V2;
use crate::verify::{
    verify_credential, verify_owned, Failure, OwnedProofError, Verified, VerifierEnv,
};
use crate::xsd::parse_date_time_stamp;

/// Builds and signs a presentation of `credentials` by `holder` (a DID), with the holder's
/// `authentication` key `vm`.
#[allow(clippy::too_many_arguments)]
pub fn present(
    holder: &str,
    vm: &str,
    key: &SigningKey,
    credentials: Vec<Value>,
    challenge: &str,
    domain: &str,
    created: &str,
    expires: Option<&str>,
    contexts: &Contexts,
) -> Result<Value, ProofError> {
    let vp = json!({
        "@context": [CREDENTIALS_V2],
        "type": ["VerifiablePresentation"],
        "holder": holder,
        "verifiableCredential": credentials,
    });
    let mut opts = ProofOptions::new(Cryptosuite::EddsaJcs2022, vm);
    opts.proof_purpose = "authentication".into();
    opts.challenge = Some(challenge.into());
    opts.domain = Some(domain.into());
    opts.created = Some(created.into());
    opts.expires = expires.map(str::to_owned);
    sign(&vp, &opts, key, contexts)
}

/// Why a presentation does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresentationFailure {
    #[error("not a well-formed presentation: {0}")]
    Malformed(ModelError),
    #[error("presentation proof: {0}")]
    Proof(ProofError),
    #[error("the presentation is not signed by its holder's authentication key: {0}")]
    HolderKey(String),
    #[error("challenge does not match")]
    Challenge,
    #[error("domain does not match")]
    Domain,
    #[error("the presentation expired")]
    Expired,
    #[error("credential {index}: {failure}")]
    Credential { index: usize, failure: Failure },
    #[error("presentation JWT: {0}")]
    Jwt(String),
    #[error("the presentation JWT is not for this verifier (aud)")]
    Audience,
}

impl PresentationFailure {
    pub fn code(&self) -> &'static str {
        match self {
            PresentationFailure::Malformed(_) => "malformed_presentation",
            PresentationFailure::Proof(_) => "bad_presentation_proof",
            PresentationFailure::HolderKey(_) => "holder_key",
            PresentationFailure::Challenge => "challenge_mismatch",
            PresentationFailure::Domain => "domain_mismatch",
            PresentationFailure::Expired => "presentation_expired",
            PresentationFailure::Credential { failure, .. } => failure.code(),
            PresentationFailure::Jwt(_) => "bad_presentation_jwt",
            PresentationFailure::Audience => "audience_mismatch",
        }
    }
}

/// What the holder's key lookup needs beyond [`VerifierEnv`].
pub trait HolderEnv: VerifierEnv {
    /// The key of `vm` if it was an `authentication` key of its DID at `at_ms`.
    fn holder_key_at(&self, vm: &str, at_ms: i64) -> Result<crate::jws::PublicJwk, String>;
}

/// A presentation that verified, with its credentials.
#[derive(Debug, Clone)]
pub struct VerifiedPresentation {
    pub holder: String,
    pub credentials: Vec<Verified>,
}

/// Verifies a presentation made for `challenge` and `domain`, and every credential in it.
pub fn verify_presentation(
    vp: &Value,
    env: &dyn HolderEnv,
    contexts: &Contexts,
    challenge: &str,
    domain: &str,
) -> Result<VerifiedPresentation, PresentationFailure> {
    check_presentation(vp).map_err(PresentationFailure::Malformed)?;
    let holder = vp
        .get("holder")
        .and_then(|h| h.as_str().or_else(|| h.get("id").and_then(Value::as_str)))
        .ok_or_else(|| PresentationFailure::HolderKey("the presentation names no holder".into()))?
        .to_owned();
    let created = match vp.get("proof") {
        Some(Value::Array(a)) => a.first(),
        p => p,
    }
    .and_then(|p| p.get("created"))
    .and_then(Value::as_str)
    .and_then(parse_date_time_stamp)
    .map(|t| t.unix_ms())
    .unwrap_or_else(|| env.now_ms());
    let proofs = match verify_owned(vp, contexts, &holder, &|vm| env.holder_key_at(vm, created)) {
        Ok(p) => p,
        Err(OwnedProofError::NotOwner(vm)) => {
            return Err(PresentationFailure::HolderKey(format!(
                "{vm} is not a key of the holder {holder}"
            )))
        }
        Err(OwnedProofError::Key(e)) => return Err(PresentationFailure::HolderKey(e)),
        Err(OwnedProofError::Proof(e)) => return Err(PresentationFailure::Proof(e)),
    };
    let proof = proofs
        .into_iter()
        .find(|p| p.proof_purpose == "authentication")
        .ok_or_else(|| {
            PresentationFailure::Proof(ProofError::MalformedProof(
                "no proof with proofPurpose authentication".into(),
            ))
        })?;
    if proof.challenge.as_deref() != Some(challenge) {
        return Err(PresentationFailure::Challenge);
    }
    if proof.domain.as_deref() != Some(domain) {
        return Err(PresentationFailure::Domain);
    }
    if let Some(exp) = proof.expires.as_deref().and_then(parse_date_time_stamp) {
        if env.now_ms() >= exp.unix_ms() {
            return Err(PresentationFailure::Expired);
        }
    }
    let creds: Vec<&Value> = match vp.get("verifiableCredential") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    let mut credentials = Vec::with_capacity(creds.len());
    for (index, c) in creds.into_iter().enumerate() {
        let v = verify_credential(c, env, contexts, true)
            .map_err(|failure| PresentationFailure::Credential { index, failure })?;
        credentials.push(v);
    }
    Ok(VerifiedPresentation {
        holder,
        credentials,
    })
}

/// Longest lifetime (`exp` − `iat`) of a presentation JWT, in seconds: it is a one-time
/// assertion, not a credential.
pub const MAX_VP_JWT_LIFETIME_S: i64 = 3600;
/// Clock skew allowed on `iat`, `nbf` and `exp`, in seconds.
pub const VP_JWT_SKEW_S: i64 = 60;

/// Signs a VC Data Model 1.1 presentation JWT (§6.3.1) of `credentials` by `holder` with its
/// `authentication` key `kid`, for `audience`, valid from `now_s` for `ttl_s` seconds, with id
/// `jti`. JOSE credentials go in as their JWT, others as themselves.
#[allow(clippy::too_many_arguments)]
pub fn present_jwt(
    holder: &str,
    kid: &str,
    key: &crate::jws::SigningKey,
    credentials: Vec<Value>,
    audience: &str,
    nonce: Option<&str>,
    now_s: i64,
    ttl_s: i64,
    jti: &str,
) -> String {
    let credentials: Vec<Value> = credentials
        .into_iter()
        .map(|c| match crate::jose::jwt_of(&c) {
            Some(jwt) => Value::String(jwt.to_owned()),
            None => c,
        })
        .collect();
    let mut claims = json!({
        "iss": holder,
        "aud": audience,
        "jti": jti,
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s + ttl_s,
        "vp": {
            "@context": [crate::model::CREDENTIALS_V1_CONTEXT],
            "type": ["VerifiablePresentation"],
            "verifiableCredential": credentials,
        },
    });
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    let mut header = serde_json::Map::new();
    header.insert("kid".into(), kid.into());
    header.insert("typ".into(), "JWT".into());
    key.sign_compact(header, claims.to_string().as_bytes())
}

/// A presentation JWT that verified.
#[derive(Debug, Clone)]
pub struct VerifiedJwtPresentation {
    pub presentation: VerifiedPresentation,
    /// `jti`: the caller keeps it until `expires_s` against replay.
    pub jti: String,
    pub expires_s: i64,
    pub nonce: Option<String>,
}

fn jwt_failure(s: impl Into<String>) -> PresentationFailure {
    PresentationFailure::Jwt(s.into())
}

/// Verifies a VC Data Model 1.1 presentation JWT (§6.3.1) made for one of `audiences`, at
/// `now_s`: the JWS by the `authentication` key `kid` of the holder `iss` (at `iat`), `aud`,
/// `jti`, the times (`exp` required, at most [`MAX_VP_JWT_LIFETIME_S`] after `iat`), the `vp`
/// claim's data model, and every credential in it. Replay of `jti` is the caller's to refuse.
pub fn verify_presentation_jwt(
    jwt: &str,
    env: &dyn HolderEnv,
    contexts: &Contexts,
    audiences: &[&str],
    now_s: i64,
) -> Result<VerifiedJwtPresentation, PresentationFailure> {
    let jws = crate::jws::Compact::parse(jwt).map_err(|e| jwt_failure(e.to_string()))?;
    if let Some(h) = ["jwk", "jku", "x5u", "x5c"]
        .iter()
        .find(|h| jws.header.contains_key(**h))
    {
        return Err(jwt_failure(format!(
            "header {h}: the key is the holder DID's (kid)"
        )));
    }
    if jws
        .header_str("typ")
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(jwt_failure("typ must be JWT"));
    }
    let kid = jws
        .header_str("kid")
        .ok_or_else(|| jwt_failure("kid is required"))?
        .to_owned();
    let claims = jws.claims().map_err(|e| jwt_failure(e.to_string()))?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| jwt_failure(format!("{name} is required")))
    };
    let holder = text("iss")?.to_owned();
    // A relative kid (`#key-1`) is a method of the holder.
    let kid = if kid.starts_with('#') {
        format!("{holder}{kid}")
    } else {
        kid
    };
    if kid.split('#').next() != Some(holder.as_str()) {
        return Err(PresentationFailure::HolderKey(format!(
            "{kid} is not a key of the holder {holder}"
        )));
    }
    let jti = text("jti")?.to_owned();
    if jti.is_empty() || jti.len() > 256 {
        return Err(jwt_failure("jti must have 1 to 256 characters"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(PresentationFailure::Audience);
    }
    let seconds = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| jwt_failure(format!("{name} must be a NumericDate in seconds"))),
    };
    let exp = seconds("exp")?.ok_or_else(|| jwt_failure("exp is required"))?;
    let iat = seconds("iat")?;
    let nbf = seconds("nbf")?;
    if now_s >= exp + VP_JWT_SKEW_S {
        return Err(PresentationFailure::Expired);
    }
    if nbf.is_some_and(|n| n > now_s + VP_JWT_SKEW_S)
        || iat.is_some_and(|i| i > now_s + VP_JWT_SKEW_S)
    {
        return Err(jwt_failure("not yet valid (nbf or iat in the future)"));
    }
    let start = iat.or(nbf).unwrap_or(now_s);
    if exp - start > MAX_VP_JWT_LIFETIME_S {
        return Err(jwt_failure(format!(
            "a presentation JWT may live at most {MAX_VP_JWT_LIFETIME_S} s"
        )));
    }
    let key = env
        .holder_key_at(&kid, start.saturating_mul(1000).saturating_add(999))
        .map_err(PresentationFailure::HolderKey)?;
    jws.verify(&key).map_err(|e| jwt_failure(e.to_string()))?;
    let Some(Value::Object(vp)) = claims.get("vp") else {
        return Err(jwt_failure("the vp claim must be an object"));
    };
    let mut vp = vp.clone();
    match vp.get("holder") {
        None => {
            vp.insert("holder".into(), holder.clone().into());
        }
        Some(h) if h.as_str() == Some(holder.as_str()) => {}
        Some(_) => return Err(jwt_failure("vp.holder disagrees with iss")),
    }
    let creds: Vec<Value> = match vp.get("verifiableCredential") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
    };
    // The data model sees JWT credentials as the enveloped credentials they stand for.
    let mut model = vp.clone();
    model.insert(
        "verifiableCredential".into(),
        creds
            .iter()
            .map(|c| match c {
                Value::String(jwt) => crate::jose::envelope(jwt),
                c => c.clone(),
            })
            .collect(),
    );
    check_presentation(&Value::Object(model)).map_err(PresentationFailure::Malformed)?;
    let mut credentials = Vec::with_capacity(creds.len());
    for (index, c) in creds.iter().enumerate() {
        let v = verify_credential(c, env, contexts, true)
            .map_err(|failure| PresentationFailure::Credential { index, failure })?;
        credentials.push(v);
    }
    Ok(VerifiedJwtPresentation {
        presentation: VerifiedPresentation {
            holder,
            credentials,
        },
        jti,
        expires_s: exp,
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}
