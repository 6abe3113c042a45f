//! Full verification of a credential: data model, schema, JSON-LD semantics (optional), proof
//! (Data Integrity, or JOSE for a `vc+jwt`) with the issuer's key *as it was at issuance*,
//! validity period, revocation (published revocations and Bitstring Status Lists) and trust.
//! Every failure has its own code. The caller supplies DID history, revocations, fetched status
//! lists, trust and the clock through [`VerifierEnv`], so this module does no IO.

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::jws::PublicJwk;

use crate::contexts::Contexts;
use crate::jose::{self, JoseError, JwtCredential};
use crate::model::{check_credential, check_semantics, ModelError, Strictness};
use crate::proof::{verify, ProofError, VerifiedProof};
use crate::status::{self, StatusList};
use crate::types::{claims, Claims, SchemaError};
use crate::xsd::parse_date_time_stamp;

/// What the caller has for a status list URL.
#[derive(Clone, Debug)]
pub enum StatusLookup {
    /// The status list credential as fetched; its proof is verified here.
    Fetched(Value),
    /// It could not be fetched, and why.
    Unavailable(String),
    /// This verification does not check status lists (e.g. indexing; checked at use).
    NotChecked,
}

/// What the verifier needs to know about the world.
pub trait VerifierEnv {
    /// The key of verification method `vm` if it was an `assertionMethod` key of its DID at
    /// `at_ms` (Unix ms, the proof's creation time), per the DID's history; else why not.
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String>;
    /// Why the credential `id` of `issuer` is revoked, if it is.
    fn revoked(&self, issuer: &str, id: &str) -> Option<String>;
    /// The status list credential at `url` (a credential's `statusListCredential`).
    fn status_list(&self, url: &str) -> StatusLookup;
    /// Whether `issuer` is trusted to issue these claims; else why not.
    fn trusted(&self, issuer: &str, claims: &Claims) -> Result<(), String>;
    /// Now, Unix ms.
    fn now_ms(&self) -> i64;
    /// The Dezi key set at `url` (a `DeziUserCredential`'s `jku`), if this verifier trusts and
    /// fetched it.
    fn key_set(&self, url: &str) -> Result<crate::dezi::KeySet, String> {
        Err(format!("{url} is not a trusted Dezi key set"))
    }
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
    #[error("JOSE: {0}")]
    Jose(JoseError),
    #[error("Dezi: {0}")]
    Dezi(crate::dezi::DeziError),
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
    #[error("suspended: {0}")]
    Suspended(String),
    #[error("status could not be checked: {0}")]
    StatusUnavailable(String),
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
            Failure::Proof(_) | Failure::Jose(JoseError::BadSignature) => "bad_proof",
            Failure::Jose(_) => "malformed",
            Failure::Dezi(crate::dezi::DeziError::KeySet(..)) => "issuer_key_not_valid_at_issuance",
            Failure::Dezi(crate::dezi::DeziError::Time) => "expired",
            Failure::Dezi(_) => "bad_proof",
            Failure::NotByIssuer { .. } => "not_by_issuer",
            Failure::IssuerKey(_) => "issuer_key_not_valid_at_issuance",
            Failure::NotYetValid(_) => "not_yet_valid",
            Failure::Expired(_) => "expired",
            Failure::Revoked(_) => "revoked",
            Failure::Suspended(_) => "suspended",
            Failure::StatusUnavailable(_) => "status_unavailable",
            Failure::Untrusted(_) => "untrusted_issuer",
        }
    }
}

/// How a verified credential was secured.
#[derive(Debug, Clone)]
pub enum Securing {
    DataIntegrity(VerifiedProof),
    /// A JWS by `kid`, with `alg`.
    Jose {
        kid: String,
        alg: crate::jws::Alg,
    },
    /// A Dezi attestation JWT, checked with the key set at `jku`.
    Dezi {
        jku: String,
    },
}

impl Securing {
    /// The cryptosuite, or `jose-<alg>` for a JWS (`jose-es256`, `jose-eddsa`, ...).
    pub fn name(&self) -> &'static str {
        use crate::jws::Alg;
        match self {
            Securing::DataIntegrity(p) => p.cryptosuite.name(),
            Securing::Jose { alg, .. } => match alg {
                Alg::EdDSA => "jose-eddsa",
                Alg::ES256 => "jose-es256",
                Alg::ES384 => "jose-es384",
                Alg::RS256 => "jose-rs256",
                Alg::PS256 => "jose-ps256",
            },
            Securing::Dezi { .. } => crate::dezi::PROOF_TYPE,
        }
    }
    pub fn verification_method(&self) -> &str {
        match self {
            Securing::DataIntegrity(p) => &p.verification_method,
            Securing::Jose { kid, .. } => kid,
            Securing::Dezi { jku } => jku,
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
    pub securing: Securing,
    /// The credential itself (decoded from the JWT for a JOSE credential).
    pub credential: Value,
}

fn issuer_of(doc: &Value) -> Option<String> {
    match doc.get("issuer")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// A date-time field, or its VC 1.1 name (`issuanceDate`, `expirationDate`).
fn time_field(doc: &Value, field: &str, v11: &str) -> Result<Option<(i64, String)>, Failure> {
    let (field, value) = match doc.get(field).and_then(Value::as_str) {
        Some(s) => (field, s),
        None => match doc.get(v11).and_then(Value::as_str) {
            Some(s) => (v11, s),
            None => return Ok(None),
        },
    };
    parse_date_time_stamp(value)
        .map(|t| Some((t.unix_ms(), value.to_owned())))
        .ok_or_else(|| {
            Failure::Malformed(ModelError {
                path: field.into(),
                problem: crate::model::Problem::NotDateTimeStamp,
            })
        })
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
    lookup: &dyn Fn(&str) -> Result<PublicJwk, String>,
) -> Result<Vec<VerifiedProof>, OwnedProofError> {
    let refused = std::cell::RefCell::new(None);
    let res = verify(doc, contexts, &|vm: &str| {
        if vm.split('#').next() != Some(owner) {
            return None;
        }
        lookup(vm)
            .and_then(|k| eddsa_key(vm, k))
            .map_err(|e| *refused.borrow_mut() = Some(e))
            .ok()
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

/// The Ed25519 key that the `eddsa-*` cryptosuites need.
fn eddsa_key(vm: &str, key: PublicJwk) -> Result<VerifyingKey, String> {
    match key {
        PublicJwk::Ed25519(k) => Ok(k),
        _ => Err(format!(
            "{vm} is not an Ed25519 key, which the eddsa cryptosuites need"
        )),
    }
}

/// Verifies a credential: a JSON object secured with Data Integrity proofs, or a JOSE
/// credential (a compact JWS string, or an `EnvelopedVerifiableCredential` holding one).
/// `semantics` adds the JSON-LD check (RDF expansion, about a millisecond): do it when a
/// credential is first accepted, not on every use.
pub fn verify_credential(
    input: &Value,
    env: &dyn VerifierEnv,
    contexts: &Contexts,
    semantics: bool,
) -> Result<Verified, Failure> {
    let jwt = match jose::jwt_of(input) {
        Some(t) => Some(jose::decode(t).map_err(Failure::Jose)?),
        None => None,
    };
    let doc = jwt.as_ref().map_or(input, |j| &j.credential);
    if jwt.is_some() && doc.get("proof").is_some() {
        return Err(Failure::Jose(JoseError::Payload(
            "a credential secured with JOSE carries no embedded proof".into(),
        )));
    }
    check_credential(doc, Strictness::Issued).map_err(Failure::Malformed)?;
    let claims = claims(doc).map_err(Failure::Schema)?;
    // JSON-LD semantics for Data Integrity only: a JOSE credential is JSON (VC Data Model 1.1
    // §6.3.1, VC-JOSE-COSE), and the national guide's credentials name contexts that are not
    // bundled (`specs/credentials.md` §8).
    let dezi = jwt.is_none() && crate::dezi::is_dezi(doc);
    if semantics && jwt.is_none() && !dezi {
        check_semantics(doc, contexts).map_err(Failure::Semantics)?;
    }
    let issuer = issuer_of(doc).ok_or_else(|| {
        Failure::Malformed(ModelError {
            path: "issuer".into(),
            problem: crate::model::Problem::Missing,
        })
    })?;
    let mut valid_from = time_field(doc, "validFrom", "issuanceDate")?;
    let mut valid_until = time_field(doc, "validUntil", "expirationDate")?;
    if let Some(j) = &jwt {
        // JWT `nbf` and `exp` narrow the validity period further.
        if let Some(nbf) = j
            .not_before_ms
            .filter(|n| valid_from.as_ref().is_none_or(|f| *n > f.0))
        {
            valid_from = Some((nbf, format!("nbf {}", nbf / 1000)));
        }
        if let Some(exp) = j
            .expires_ms
            .filter(|e| valid_until.as_ref().is_none_or(|u| *e < u.0))
        {
            valid_until = Some((exp, format!("exp {}", exp / 1000)));
        }
    }
    let securing = match &jwt {
        Some(j) => verify_jose(j, &issuer, valid_from.as_ref().map(|f| f.0), env)?,
        None if dezi => Securing::Dezi {
            jku: crate::dezi::verify(doc, &|url| env.key_set(url), env.now_ms() / 1000)
                .map_err(Failure::Dezi)?,
        },
        None => verify_data_integrity(
            doc,
            &issuer,
            valid_from.as_ref().map(|f| f.0),
            env,
            contexts,
        )?,
    };
    let now = env.now_ms();
    if let Some((f, text)) = &valid_from {
        // An issuer's clock a little ahead of ours must not make a fresh credential unusable
        // for a minute (`specs/credentials.md` §5); its end is kept to the millisecond.
        if now.saturating_add(CLOCK_SKEW_MS) < *f {
            return Err(Failure::NotYetValid(text.clone()));
        }
    }
    if let Some((u, text)) = &valid_until {
        if now >= *u {
            return Err(Failure::Expired(text.clone()));
        }
    }
    let id = doc.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(id) = &id {
        if let Some(reason) = env.revoked(&issuer, id) {
            return Err(Failure::Revoked(reason));
        }
    }
    check_status(doc, &issuer, env, contexts)?;
    env.trusted(&issuer, &claims).map_err(Failure::Untrusted)?;
    Ok(Verified {
        id,
        issuer,
        claims,
        valid_from_ms: valid_from.map(|f| f.0),
        valid_until_ms: valid_until.map(|u| u.0),
        securing,
        credential: doc.clone(),
    })
}

/// How far ahead of this node's clock a credential's `validFrom` (or `nbf`) may be.
pub const CLOCK_SKEW_MS: i64 = 60_000;

/// The JWS is by the issuer: `kid` is a key of the issuer's DID at issuance (`iat`, else the
/// start of validity, else now).
fn verify_jose(
    j: &JwtCredential,
    issuer: &str,
    valid_from: Option<i64>,
    env: &dyn VerifierEnv,
) -> Result<Securing, Failure> {
    if j.kid.split('#').next() != Some(issuer) {
        return Err(Failure::NotByIssuer {
            issuer: issuer.to_owned(),
            vm: j.kid.clone(),
        });
    }
    // `iat` has whole seconds: the key is looked up at the end of that second, so an issuer
    // DID created earlier in the same second counts.
    let at = j
        .issued_at_ms
        .map(|iat| iat.saturating_add(999))
        .or(valid_from)
        .unwrap_or_else(|| env.now_ms());
    let key = if issuer.starts_with("did:x509:") {
        // The chain travels with the JWS; the DID resolves with it, now.
        let resolved = knoop_did::x509::resolve(issuer, &j.x5c, env.now_ms() / 1000)
            .map_err(|e| Failure::IssuerKey(e.to_string()))?;
        check_x509_credential(&j.credential, &resolved)?;
        PublicJwk::from_json(&resolved.jwk).map_err(|e| Failure::IssuerKey(e.to_string()))?
    } else {
        env.issuer_key_at(&j.kid, at).map_err(Failure::IssuerKey)?
    };
    j.verify_signature(&key).map_err(Failure::Jose)?;
    Ok(Securing::Jose {
        kid: j.kid.clone(),
        alg: j.alg(),
    })
}

/// The national guide's `X509Credential` rules, and the time rule for any credential of a
/// `did:x509` issuer: it is valid only within its certificate's validity; an `X509Credential`
/// claims nothing its issuer DID's policies do not say (`subject.<K>`, `san.<type>`, `eku`).
fn check_x509_credential(doc: &Value, resolved: &knoop_did::x509::Resolved) -> Result<(), Failure> {
    use knoop_did::x509::Policy;
    let bad = |problem: String| {
        Failure::Schema(SchemaError {
            field: "X509Credential".into(),
            problem,
        })
    };
    let seconds = |field: &str, v11: &str| {
        doc.get(field)
            .or_else(|| doc.get(v11))
            .and_then(Value::as_str)
            .and_then(parse_date_time_stamp)
            .map(|t| t.unix_ms() / 1000)
    };
    if let Some(from) = seconds("validFrom", "issuanceDate") {
        if from < resolved.not_before {
            return Err(bad("issued before its certificate's notBefore".into()));
        }
    }
    if let Some(until) = seconds("validUntil", "expirationDate") {
        if until > resolved.not_after {
            return Err(bad("valid after its certificate's notAfter".into()));
        }
    }
    let is_x509 = match doc.get("type") {
        Some(Value::Array(a)) => a.iter().any(|t| t == "X509Credential"),
        Some(t) => t == "X509Credential",
        None => false,
    };
    if !is_x509 {
        return Ok(());
    }
    let subject = doc
        .get("credentialSubject")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("credentialSubject must be one object".into()))?;
    let policies = &resolved.did.policies;
    for (group, claims) in subject {
        if group == "id" {
            continue;
        }
        let claims = claims
            .as_object()
            .ok_or_else(|| bad(format!("{group} must be an object")))?;
        for (name, value) in claims {
            let v = value.as_str().unwrap_or_default();
            let in_policy = policies.iter().any(|p| match (group.as_str(), p) {
                ("subject", Policy::Subject(kv)) => kv
                    .iter()
                    .any(|(k, pv)| k.eq_ignore_ascii_case(name) && pv == v),
                ("san", Policy::San(t, pv)) => t == name && pv == v,
                ("eku", Policy::Eku(oid)) => oid == name,
                _ => false,
            });
            if !in_policy {
                return Err(bad(format!(
                    "credentialSubject.{group}.{name} is not in the issuer's did:x509 policies"
                )));
            }
        }
    }
    Ok(())
}

/// Every proof is by the issuer, with a key it had when the proof was made; one of them is for
/// `assertionMethod`.
fn verify_data_integrity(
    doc: &Value,
    issuer: &str,
    valid_from: Option<i64>,
    env: &dyn VerifierEnv,
    contexts: &Contexts,
) -> Result<Securing, Failure> {
    let at = proof_created(doc)
        .or(valid_from)
        .unwrap_or_else(|| env.now_ms());
    let proofs = match verify_owned(doc, contexts, issuer, &|vm| env.issuer_key_at(vm, at)) {
        Ok(p) => p,
        Err(OwnedProofError::NotOwner(vm)) => {
            return Err(Failure::NotByIssuer {
                issuer: issuer.to_owned(),
                vm,
            })
        }
        Err(OwnedProofError::Key(e)) => return Err(Failure::IssuerKey(e)),
        Err(OwnedProofError::Proof(e)) => return Err(Failure::Proof(e)),
    };
    proofs
        .into_iter()
        .find(|p| p.proof_purpose == "assertionMethod")
        .map(Securing::DataIntegrity)
        .ok_or_else(|| {
            Failure::Proof(ProofError::MalformedProof(
                "no proof with proofPurpose assertionMethod".into(),
            ))
        })
}

/// An environment for the status list credential itself: same issuer keys and clock, no
/// revocation, status or trust of its own (the list is trusted because its issuer is the
/// credential's).
struct ListEnv<'a>(&'a dyn VerifierEnv);

impl VerifierEnv for ListEnv<'_> {
    fn issuer_key_at(&self, vm: &str, at_ms: i64) -> Result<PublicJwk, String> {
        self.0.issuer_key_at(vm, at_ms)
    }
    fn revoked(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn status_list(&self, _: &str) -> StatusLookup {
        StatusLookup::NotChecked
    }
    fn trusted(&self, _: &str, _: &Claims) -> Result<(), String> {
        Ok(())
    }
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

/// Bitstring Status List entries: each list must be fetched, verify, be by the credential's
/// issuer and be valid now; a set `revocation` or `suspension` status fails the credential.
fn check_status(
    doc: &Value,
    issuer: &str,
    env: &dyn VerifierEnv,
    contexts: &Contexts,
) -> Result<(), Failure> {
    let unavailable = |url: &str, why: String| Failure::StatusUnavailable(format!("{url}: {why}"));
    let entries = status::entries(doc).map_err(|e| Failure::StatusUnavailable(e.to_string()))?;
    for entry in entries.iter().filter(|e| e.blocks()) {
        let list_vc = match env.status_list(&entry.list) {
            StatusLookup::NotChecked => continue,
            StatusLookup::Unavailable(why) => return Err(unavailable(&entry.list, why)),
            StatusLookup::Fetched(v) => v,
        };
        let list = verify_credential(&list_vc, &ListEnv(env), contexts, false)
            .map_err(|e| unavailable(&entry.list, format!("the list does not verify: {e}")))?;
        if list.issuer != issuer {
            return Err(unavailable(
                &entry.list,
                format!("the list is issued by {}, not by {issuer}", list.issuer),
            ));
        }
        let status = StatusList::from_credential(&list.credential)
            .and_then(|l| l.status(entry))
            .map_err(|e| unavailable(&entry.list, e.to_string()))?;
        if status != 0 {
            let at = format!("status list {} index {}", entry.list, entry.index);
            return Err(if entry.purpose == "revocation" {
                Failure::Revoked(at)
            } else {
                Failure::Suspended(at)
            });
        }
    }
    Ok(())
}
