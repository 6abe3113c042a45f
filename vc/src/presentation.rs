//! Verifiable presentations: a holder presents credentials to a verifier, bound to the
//! verifier's `challenge` and `domain` so the presentation cannot be replayed elsewhere.

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
