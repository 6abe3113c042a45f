//! Full verification of a knoop credential: data model, schema, JSON-LD semantics (optional),
//! proof with the issuer's key *as it was at issuance*, validity period, revocation and trust.
//! Every failure has its own code. The caller supplies DID history, revocations, trust and the
//! clock through [`VerifierEnv`], so this module does no IO.

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::contexts::Contexts;
use crate::model::{check_credential, check_semantics, ModelError, Strictness};
use crate::proof::{verify, ProofError, VerifiedProof};
use crate::types::{claims, Claims, SchemaError};
use crate::xsd::parse_date_time_stamp;

/// What the verifier needs to know about the world.
pub trait VerifierEnv {
    /// The Ed25519 key of verification method `vm` if it was an `assertionMethod` key of its DID
    /// at `at_ms` (Unix ms, the proof's creation time), per the DID's history; else why not.
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<VerifyingKey, String>;
    /// Why the credential `id` of `issuer` is revoked, if it is.
    fn revoked(&self, issuer: &str, id: &str) -> Option<String>;
    /// Whether `issuer` is trusted to issue these claims; else why not.
    fn trusted(&self, issuer: &str, claims: &Claims) -> Result<(), String>;
    /// Now, Unix ms.
    fn now_ms(&self) -> i64;
}

/// Why a credential does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    #[error("not a well-formed credential: {0}")]
    Malformed(ModelError),
    #[error("{0}")]
    Schema(SchemaError),
    #[error("JSON-LD: {0}")]
    Semantics(ModelError),
    #[error("proof: {0}")]
    Proof(ProofError),
    #[error("the proof is not by the issuer {issuer} (verification method {vm})")]
    NotByIssuer { issuer: String, vm: String },
    #[error("issuer key: {0}")]
    IssuerKey(String),
    #[error("not valid before {0}")]
    NotYetValid(String),
    #[error("expired at {0}")]
    Expired(String),
    #[error("revoked: {0}")]
    Revoked(String),
    #[error("untrusted issuer: {0}")]
    Untrusted(String),
}

impl Failure {
    /// A stable code per reason.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Malformed(_) => "malformed",
            Failure::Schema(_) => "schema",
            Failure::Semantics(_) => "semantics",
            Failure::Proof(_) => "bad_proof",
            Failure::NotByIssuer { .. } => "not_by_issuer",
            Failure::IssuerKey(_) => "issuer_key_not_valid_at_issuance",
            Failure::NotYetValid(_) => "not_yet_valid",
            Failure::Expired(_) => "expired",
            Failure::Revoked(_) => "revoked",
            Failure::Untrusted(_) => "untrusted_issuer",
        }
    }
}

/// A credential that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub id: Option<String>,
    pub issuer: String,
    pub claims: Claims,
    pub valid_from_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub proof: VerifiedProof,
}

fn issuer_of(doc: &Value) -> Option<String> {
    match doc.get("issuer")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn time_field(doc: &Value, field: &str) -> Result<Option<i64>, Failure> {
    match doc.get(field).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => parse_date_time_stamp(s)
            .map(|t| Some(t.unix_ms()))
            .ok_or_else(|| {
                Failure::Malformed(ModelError {
                    path: field.into(),
                    problem: crate::model::Problem::NotDateTimeStamp,
                })
            }),
    }
}

/// The proof's `created` (of the first proof), in Unix ms.
fn proof_created(doc: &Value) -> Option<i64> {
    let p = match doc.get("proof")? {
        Value::Array(a) => a.first()?,
        p => p,
    };
    parse_date_time_stamp(p.get("created")?.as_str()?).map(|t| t.unix_ms())
}

/// Why [`verify_owned`] failed.
pub(crate) enum OwnedProofError {
    /// A proof's verification method is not a key of the owner's DID.
    NotOwner(String),
    /// The owner's key lookup refused, with its reason.
    Key(String),
    Proof(ProofError),
}

/// Verifies every proof on `doc`, each with a key of the DID `owner` found by `lookup`.
pub(crate) fn verify_owned(
    doc: &Value,
    contexts: &Contexts,
    owner: &str,
    lookup: &dyn Fn(&str) -> Result<VerifyingKey, String>,
) -> Result<Vec<VerifiedProof>, OwnedProofError> {
    let refused = std::cell::RefCell::new(None);
    let res = verify(doc, contexts, &|vm: &str| {
        if vm.split('#').next() != Some(owner) {
            return None;
        }
        lookup(vm).map_err(|e| *refused.borrow_mut() = Some(e)).ok()
    });
    match res {
        Ok(p) => Ok(p),
        Err(ProofError::KeyNotFound(vm)) => Err(match refused.into_inner() {
            Some(e) => OwnedProofError::Key(e),
            None => OwnedProofError::NotOwner(vm),
        }),
        Err(e) => Err(OwnedProofError::Proof(e)),
    }
}

/// Verifies a knoop credential. `semantics` adds the JSON-LD check (RDF expansion, about a
/// millisecond): do it when a credential is first accepted, not on every use.
pub fn verify_credential(
    doc: &Value,
    env: &dyn VerifierEnv,
    contexts: &Contexts,
    semantics: bool,
) -> Result<Verified, Failure> {
    check_credential(doc, Strictness::Issued).map_err(Failure::Malformed)?;
    let claims = claims(doc).map_err(Failure::Schema)?;
    if semantics {
        check_semantics(doc, contexts).map_err(Failure::Semantics)?;
    }
    let issuer = issuer_of(doc).ok_or_else(|| {
        Failure::Malformed(ModelError {
            path: "issuer".into(),
            problem: crate::model::Problem::Missing,
        })
    })?;
    let valid_from = time_field(doc, "validFrom")?;
    let valid_until = time_field(doc, "validUntil")?;
    // The key must have been the issuer's when the proof was made.
    let at = proof_created(doc)
        .or(valid_from)
        .unwrap_or_else(|| env.now_ms());
    let proofs = match verify_owned(doc, contexts, &issuer, &|vm| env.issuer_key_at(vm, at)) {
        Ok(p) => p,
        Err(OwnedProofError::NotOwner(vm)) => return Err(Failure::NotByIssuer { issuer, vm }),
        Err(OwnedProofError::Key(e)) => return Err(Failure::IssuerKey(e)),
        Err(OwnedProofError::Proof(e)) => return Err(Failure::Proof(e)),
    };
    let proof = proofs
        .into_iter()
        .find(|p| p.proof_purpose == "assertionMethod")
        .ok_or_else(|| {
            Failure::Proof(ProofError::MalformedProof(
                "no proof with proofPurpose assertionMethod".into(),
            ))
        })?;
    let now = env.now_ms();
    if let Some(f) = valid_from {
        if now < f {
            return Err(Failure::NotYetValid(
                doc["validFrom"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    if let Some(u) = valid_until {
        if now >= u {
            return Err(Failure::Expired(
                doc["validUntil"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    let id = doc.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(id) = &id {
        if let Some(reason) = env.revoked(&issuer, id) {
            return Err(Failure::Revoked(reason));
        }
    }
    env.trusted(&issuer, &claims).map_err(Failure::Untrusted)?;
    Ok(Verified {
        id,
        issuer,
        claims,
        valid_from_ms: valid_from,
        valid_until_ms: valid_until,
        proof,
    })
}
