//! Issuing as a DID hosted here (spec: `specs/credentials.md`): credentials signed with the
//! issuer's assertion key (Data Integrity or a `vc+jwt`), and presentations signed with the
//! holder's authentication key for a verifier's challenge and domain.

use knoop_did::knoop::time::to_rfc3339_ms;
use knoop_vc::proof::{sign, Cryptosuite, ProofOptions};
use knoop_vc::types::{claims, knoop_contexts, CREDENTIALS_V2, KNOOP_CONTEXT};
use rand::RngCore;
use serde_json::{json, Value};

use crate::identity::did_ops::{DidOps, OpsError};
use crate::identity::status_hosting::HostedStatusLists;

/// Longest validity of a presentation (a day).
pub const MAX_PRESENTATION_TTL_S: u64 = 86_400;

/// Why a credential or presentation could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The request itself is wrong (type, subject shape, cryptosuite, challenge).
    #[error("{0}")]
    BadRequest(String),
    /// The claims do not fit the credential type's schema.
    #[error("{0}")]
    Schema(String),
    /// The credential breaks the data model.
    #[error("{0}")]
    Malformed(String),
    /// Signing failed.
    #[error("{0}")]
    Proof(String),
    /// The signer is not a usable DID hosted here.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

/// A credential to issue.
#[derive(Debug)]
pub struct CredentialRequest {
    /// A DID hosted here, with an assertionMethod key.
    pub issuer: String,
    /// `CareOrganizationCredential` or `HealthcareProfessionalCredential`.
    pub type_: String,
    /// The claims, with `id` the subject's DID (`type` is filled in).
    pub subject: Value,
    pub valid_until: Option<String>,
    /// `eddsa-jcs-2022` (default) or `eddsa-rdfc-2022`; `jose` for a `vc+jwt`, or `jwt_vc`
    /// for a VC Data Model 1.1 JWT (the national guide's catalog format); JOSE is ES256 with the
    /// issuer's P-256 key, EdDSA for a DID without one.
    pub cryptosuite: Option<String>,
}

/// A random `urn:uuid:` (version 4) for a credential id.
pub fn urn_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Issues `req` as its issuer (hosted here): checked against the data model and the type's
/// schema, given a status entry in the issuer's hosted status list (when lists are hosted),
/// then signed.
pub fn issue(
    dids: &DidOps,
    req: CredentialRequest,
    status: &HostedStatusLists,
) -> Result<Value, IssueError> {
    let now = knoop_gossip::tx::now_ms();
    let mut vc = unsigned(&req, now)?;
    let suite = match req.cryptosuite.as_deref() {
        None => Some(Cryptosuite::EddsaJcs2022),
        Some("jose") | Some("jwt_vc") => None,
        Some(n) => Some(
            Cryptosuite::from_name(n)
                .ok_or_else(|| IssueError::BadRequest(format!("unknown cryptosuite {n}")))?,
        ),
    };
    // The issuer must be able to sign before it gets a status entry.
    dids.with_assertion_key(&req.issuer, |_, _| ())?;
    let id = vc["id"].as_str().unwrap_or_default().to_owned();
    if let Some(entry) = status
        .allocate(&req.issuer, &id)
        .map_err(|e| IssueError::Proof(e.to_string()))?
    {
        vc["credentialStatus"] = entry;
    }
    let Some(suite) = suite else {
        let vc11 = req.cryptosuite.as_deref() == Some("jwt_vc");
        return jose_sign(dids, &req.issuer, &vc, vc11);
    };
    let contexts = knoop_contexts();
    dids.with_assertion_key(&req.issuer, |vm, key| {
        let mut opts = ProofOptions::new(suite, vm);
        opts.created = Some(to_rfc3339_ms(now));
        sign(&vc, &opts, key, &contexts).map_err(|e| e.to_string())
    })?
    .map_err(IssueError::Proof)
}

/// The unsigned credential of `req` at `now` (ms): the subject typed, checked against the type's
/// schema and the data model.
fn unsigned(req: &CredentialRequest, now: u64) -> Result<Value, IssueError> {
    let subject_type = match req.type_.as_str() {
        "CareOrganizationCredential" => "CareOrganization",
        "HealthcareProfessionalCredential" => "HealthcareProfessional",
        t => {
            return Err(IssueError::BadRequest(format!(
                "unknown credential type {t}"
            )))
        }
    };
    let mut subject = req.subject.clone();
    let Some(obj) = subject.as_object_mut() else {
        return Err(IssueError::BadRequest("subject must be an object".into()));
    };
    obj.insert("type".into(), subject_type.into());
    let mut vc = json!({
        "@context": [CREDENTIALS_V2, KNOOP_CONTEXT],
        "id": urn_uuid(),
        "type": ["VerifiableCredential", req.type_],
        "issuer": req.issuer,
        "validFrom": to_rfc3339_ms(now),
        "credentialSubject": subject,
    });
    if let Some(u) = &req.valid_until {
        vc["validUntil"] = Value::String(u.clone());
    }
    claims(&vc).map_err(|e| IssueError::Schema(e.to_string()))?;
    knoop_vc::model::check_credential(&vc, knoop_vc::Strictness::Issued)
        .map_err(|e| IssueError::Malformed(e.to_string()))?;
    Ok(vc)
}

/// Whether `req` could be issued now (schema, data model, the issuer's signing key), without
/// signing it or giving it a status entry: for an offer made before its holder is known.
pub fn check(dids: &DidOps, req: &CredentialRequest) -> Result<(), IssueError> {
    unsigned(req, knoop_gossip::tx::now_ms())?;
    dids.with_assertion_key(&req.issuer, |_, _| ())?;
    Ok(())
}

/// A `vc+jwt` of `vc` by `issuer` (or, `vc11`, a VC 1.1 JWT): ES256 with its P-256 key, else
/// EdDSA.
fn jose_sign(dids: &DidOps, issuer: &str, vc: &Value, vc11: bool) -> Result<Value, IssueError> {
    dids.with_jose_key(
        issuer,
        knoop_did::document::Relationship::AssertionMethod,
        |vm, key| {
            if vc11 {
                knoop_vc::jose::sign_vc11(vc, vm, key)
            } else {
                knoop_vc::jose::sign(vc, vm, key)
            }
        },
    )?
    .map(Value::String)
    .map_err(|e| IssueError::Proof(e.to_string()))
}

/// A presentation by `holder` (hosted here) of `credentials` for `challenge` and `domain`,
/// valid `ttl_s` seconds (at most [`MAX_PRESENTATION_TTL_S`]). JOSE credentials travel
/// enveloped (VC 2.0).
pub fn present(
    dids: &DidOps,
    holder: &str,
    credentials: Vec<Value>,
    challenge: &str,
    domain: &str,
    ttl_s: u64,
) -> Result<Value, IssueError> {
    if challenge.is_empty() || domain.is_empty() {
        return Err(IssueError::BadRequest(
            "challenge and domain are required".into(),
        ));
    }
    let now = knoop_gossip::tx::now_ms();
    let expires = to_rfc3339_ms(now + ttl_s.min(MAX_PRESENTATION_TTL_S) * 1000);
    let contexts = knoop_contexts();
    let credentials: Vec<Value> = credentials
        .into_iter()
        .map(|c| match c {
            Value::String(jwt) => knoop_vc::jose::envelope(&jwt),
            c => c,
        })
        .collect();
    dids.with_key_for(
        holder,
        knoop_did::document::Relationship::Authentication,
        |vm, key| {
            knoop_vc::presentation::present(
                holder,
                vm,
                key,
                credentials,
                challenge,
                domain,
                &to_rfc3339_ms(now),
                Some(&expires),
                &contexts,
            )
        },
    )?
    .map_err(|e| IssueError::Proof(e.to_string()))
}

/// A VC 1.1 presentation JWT of `credentials` by `holder` for `audience` (the assertion of an
/// RFC 7523 token request), with the verifier's `nonce` if it gave one, signed with the holder's
/// `authentication` key, living `ttl_s`.
pub fn present_jwt(
    dids: &DidOps,
    holder: &str,
    credentials: Vec<Value>,
    audience: &str,
    nonce: Option<&str>,
    ttl_s: u64,
) -> Result<String, IssueError> {
    if audience.is_empty() {
        return Err(IssueError::BadRequest("an audience is required".into()));
    }
    let now_s = (knoop_gossip::tx::now_ms() / 1000) as i64;
    let ttl = ttl_s.min(MAX_PRESENTATION_TTL_S) as i64;
    let jti = urn_uuid();
    Ok(dids.with_jose_key(
        holder,
        knoop_did::document::Relationship::Authentication,
        |vm, key| {
            knoop_vc::presentation::present_jwt(
                holder,
                vm,
                key,
                credentials,
                audience,
                nonce,
                now_s,
                ttl,
                &jti,
            )
        },
    )?)
}
