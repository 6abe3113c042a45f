//! Data Integrity proofs with the EdDSA cryptosuites `eddsa-jcs-2022` and `eddsa-rdfc-2022`
//! ([vc-di-eddsa](https://www.w3.org/TR/vc-di-eddsa/), proof sets and chains from
//! [vc-data-integrity §4.3/4.4](https://www.w3.org/TR/vc-data-integrity/#add-proof-set-chain)).
//!
//! Both suites sign `SHA-256(canonical proof configuration) ‖ SHA-256(canonical document)`
//! with Ed25519 and encode the signature as multibase base58btc (`z...`). They differ only in
//! the canonicalisation: JCS of the JSON, or RDFC-1.0 of the JSON-LD (see [`crate::canon`]).
//! The proof configuration is the proof without `proofValue`, carrying the document's
//! `@context`; `eddsa-jcs-2022` also keeps that `@context` in the proof itself.
//!
//! Nothing here resolves DIDs or reads a clock: the caller maps `verificationMethod` to a key,
//! and checks `proofPurpose`, `expires`, `domain` and `challenge` from [`VerifiedProof`].

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canon::{self, CanonError};
use crate::contexts::Contexts;
use crate::xsd::parse_date_time_stamp;

/// The `type` of every Data Integrity proof made or checked here.
pub const DATA_INTEGRITY_PROOF: &str = "DataIntegrityProof";

/// A supported cryptosuite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cryptosuite {
    /// `eddsa-jcs-2022`: JSON canonicalisation (RFC 8785); no JSON-LD processing.
    EddsaJcs2022,
    /// `eddsa-rdfc-2022`: RDF dataset canonicalisation (RDFC-1.0) of the JSON-LD document.
    EddsaRdfc2022,
}

impl Cryptosuite {
    /// The `cryptosuite` value in a proof.
    pub fn name(self) -> &'static str {
        match self {
            Cryptosuite::EddsaJcs2022 => "eddsa-jcs-2022",
            Cryptosuite::EddsaRdfc2022 => "eddsa-rdfc-2022",
        }
    }

    /// The suite named `name`, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "eddsa-jcs-2022" => Some(Cryptosuite::EddsaJcs2022),
            "eddsa-rdfc-2022" => Some(Cryptosuite::EddsaRdfc2022),
            _ => None,
        }
    }
}

/// What a new proof says besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOptions {
    pub cryptosuite: Cryptosuite,
    /// The key's URL, e.g. `did:knoop:...#key-1`; verifiers resolve it to the public key.
    pub verification_method: String,
    /// Usually `assertionMethod` (credentials) or `authentication` (presentations).
    pub proof_purpose: String,
    /// `created`, an XML Schema dateTimeStamp. The caller supplies the time: no clock here.
    pub created: Option<String>,
    pub expires: Option<String>,
    /// The proof's own `id` (a URL), needed if later proofs chain to it.
    pub id: Option<String>,
    pub domain: Option<String>,
    pub challenge: Option<String>,
    pub nonce: Option<String>,
    /// `id`s of existing proofs this one chains to (a proof chain); empty for a proof set.
    pub previous_proof: Vec<String>,
}

impl ProofOptions {
    /// An `assertionMethod` proof with nothing optional set.
    pub fn new(cryptosuite: Cryptosuite, verification_method: impl Into<String>) -> Self {
        Self {
            cryptosuite,
            verification_method: verification_method.into(),
            proof_purpose: "assertionMethod".into(),
            created: None,
            expires: None,
            id: None,
            domain: None,
            challenge: None,
            nonce: None,
            previous_proof: Vec::new(),
        }
    }

    /// The proof object these options describe, without `proofValue` or `@context`.
    fn to_proof(&self) -> Result<Map<String, Value>, ProofError> {
        let mut p = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.insert(k.into(), Value::String(v.clone()));
            }
        };
        put("id", &self.id);
        put("created", &self.created);
        put("expires", &self.expires);
        put("domain", &self.domain);
        put("challenge", &self.challenge);
        put("nonce", &self.nonce);
        p.insert("type".into(), DATA_INTEGRITY_PROOF.into());
        p.insert("cryptosuite".into(), self.cryptosuite.name().into());
        p.insert(
            "verificationMethod".into(),
            self.verification_method.clone().into(),
        );
        p.insert("proofPurpose".into(), self.proof_purpose.clone().into());
        match self.previous_proof.as_slice() {
            [] => {}
            [one] => {
                p.insert("previousProof".into(), one.clone().into());
            }
            many => {
                p.insert("previousProof".into(), many.to_vec().into());
            }
        }
        check_dates(&p)?;
        Ok(p)
    }
}

/// A proof that verified. The caller still decides whether the key may make it (the
/// verification method's relationship to the issuer matches `proof_purpose`), and checks
/// `expires`, `domain` and `challenge` against its own clock and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    pub cryptosuite: Cryptosuite,
    pub verification_method: String,
    pub proof_purpose: String,
    pub id: Option<String>,
    pub created: Option<String>,
    pub expires: Option<String>,
    pub domain: Option<String>,
    pub challenge: Option<String>,
}

/// Why a proof could not be made or did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("the document is not a JSON object")]
    NotAnObject,
    #[error("the document has no proof")]
    NoProof,
    #[error("malformed proof: {0}")]
    MalformedProof(String),
    #[error("proof type is {0:?}, expected \"DataIntegrityProof\"")]
    WrongProofType(String),
    #[error("unknown cryptosuite {0:?}")]
    UnknownCryptosuite(String),
    #[error("{field} is not an XML Schema dateTimeStamp: {value:?}")]
    BadDate { field: &'static str, value: String },
    #[error("the proof's @context is not a prefix of the document's @context")]
    ContextMismatch,
    #[error("proofValue is not a multibase base58btc Ed25519 signature")]
    BadProofValue,
    #[error("previousProof {0:?} names no proof in the document")]
    PreviousProofNotFound(String),
    #[error("no key found for verification method {0:?}")]
    KeyNotFound(String),
    #[error("canonicalisation failed: {0}")]
    Canonicalization(#[from] CanonError),
    #[error("signature does not match (verification method {0:?})")]
    SignatureMismatch(String),
}

/// Signs `document` and returns it with the new proof added: as `proof` if it had none, else
/// appended to its proofs (a proof set, or a chain if `options.previous_proof` is set).
pub fn sign(
    document: &Value,
    options: &ProofOptions,
    key: &SigningKey,
    contexts: &Contexts,
) -> Result<Value, ProofError> {
    let proof = create_proof(document, options, key, contexts)?;
    let mut secured = document.as_object().ok_or(ProofError::NotAnObject)?.clone();
    match secured.remove("proof") {
        None => {
            secured.insert("proof".into(), proof);
        }
        Some(Value::Array(mut proofs)) => {
            proofs.push(proof);
            secured.insert("proof".into(), Value::Array(proofs));
        }
        Some(existing) => {
            secured.insert("proof".into(), Value::Array(vec![existing, proof]));
        }
    }
    Ok(Value::Object(secured))
}

/// Makes a proof over `document` (any existing proofs are left out of what is signed, except
/// those named in `options.previous_proof`) and returns the proof object.
pub fn create_proof(
    document: &Value,
    options: &ProofOptions,
    key: &SigningKey,
    contexts: &Contexts,
) -> Result<Value, ProofError> {
    let doc = document.as_object().ok_or(ProofError::NotAnObject)?;
    let existing = proofs_of(doc);
    let unsecured = unsecured_document(doc, &existing, &options.previous_proof)?;
    let mut proof = options.to_proof()?;
    if options.cryptosuite == Cryptosuite::EddsaJcs2022 {
        if let Some(ctx) = doc.get("@context") {
            proof.insert("@context".into(), ctx.clone());
        }
    }
    let config = proof_configuration(&proof, &unsecured);
    let hash = hash_data(options.cryptosuite, &unsecured, &config, contexts)?;
    let signature = key.sign(&hash);
    proof.insert(
        "proofValue".into(),
        format!("z{}", bs58::encode(signature.to_bytes()).into_string()).into(),
    );
    Ok(Value::Object(proof))
}

/// Verifies every proof on `document` (a single proof, a set, or a chain) and returns them in
/// document order; fails on the first that does not verify. `resolve_key` maps a proof's
/// `verificationMethod` to its Ed25519 key.
pub fn verify(
    document: &Value,
    contexts: &Contexts,
    resolve_key: &dyn Fn(&str) -> Option<VerifyingKey>,
) -> Result<Vec<VerifiedProof>, ProofError> {
    let doc = document.as_object().ok_or(ProofError::NotAnObject)?;
    let proofs = proofs_of(doc);
    if proofs.is_empty() {
        return Err(ProofError::NoProof);
    }
    proofs
        .iter()
        .map(|p| verify_one(doc, &proofs, p, contexts, resolve_key))
        .collect()
}

/// `hashData` of the spec: `SHA-256(canonical proof config) ‖ SHA-256(canonical document)`.
/// `unsecured` is the document without the proof being made or checked; `proof_config` the
/// proof without `proofValue`, with the document's `@context`.
pub fn hash_data(
    cryptosuite: Cryptosuite,
    unsecured: &Map<String, Value>,
    proof_config: &Map<String, Value>,
    contexts: &Contexts,
) -> Result<[u8; 64], ProofError> {
    let (config, doc) = match cryptosuite {
        Cryptosuite::EddsaJcs2022 => (
            canon::jcs(&Value::Object(proof_config.clone()))?,
            canon::jcs(&Value::Object(unsecured.clone()))?,
        ),
        Cryptosuite::EddsaRdfc2022 => (
            canon::rdfc(&Value::Object(proof_config.clone()), contexts)?,
            canon::rdfc(&Value::Object(unsecured.clone()), contexts)?,
        ),
    };
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(config.as_bytes()));
    out[32..].copy_from_slice(&Sha256::digest(doc.as_bytes()));
    Ok(out)
}

fn verify_one(
    doc: &Map<String, Value>,
    all: &[&Map<String, Value>],
    proof: &Map<String, Value>,
    contexts: &Contexts,
    resolve_key: &dyn Fn(&str) -> Option<VerifyingKey>,
) -> Result<VerifiedProof, ProofError> {
    let ty = str_field(proof, "type")?.ok_or_else(|| missing("type"))?;
    if ty != DATA_INTEGRITY_PROOF {
        return Err(ProofError::WrongProofType(ty.to_owned()));
    }
    let suite_name = str_field(proof, "cryptosuite")?.ok_or_else(|| missing("cryptosuite"))?;
    let cryptosuite = Cryptosuite::from_name(suite_name)
        .ok_or_else(|| ProofError::UnknownCryptosuite(suite_name.to_owned()))?;
    let verification_method = str_field(proof, "verificationMethod")?
        .ok_or_else(|| missing("verificationMethod"))?
        .to_owned();
    let proof_purpose = str_field(proof, "proofPurpose")?
        .ok_or_else(|| missing("proofPurpose"))?
        .to_owned();
    let proof_value = str_field(proof, "proofValue")?.ok_or_else(|| missing("proofValue"))?;
    let signature = decode_proof_value(proof_value)?;
    check_dates(proof)?;

    let previous = match proof.get("previousProof") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("previousProof must be a string or strings"))?,
        Some(_) => return Err(malformed("previousProof must be a string or strings")),
    };
    let mut unsecured = unsecured_document(doc, all, &previous)?;

    let mut options = proof.clone();
    options.remove("proofValue");
    if let Some(proof_ctx) = options.get("@context") {
        // vc-di-eddsa §3.3.2 step 4 (and the same rule for rdfc): the document's contexts must
        // start with the proof's, and the proof's are what was signed.
        let as_list = |v: &Value| match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let doc_ctx = doc.get("@context").map(as_list).unwrap_or_default();
        let proof_ctx = as_list(proof_ctx);
        if doc_ctx.len() < proof_ctx.len() || doc_ctx[..proof_ctx.len()] != proof_ctx[..] {
            return Err(ProofError::ContextMismatch);
        }
        if cryptosuite == Cryptosuite::EddsaJcs2022 {
            unsecured.insert("@context".into(), options["@context"].clone());
        }
    }
    let config = proof_configuration(&options, &unsecured);
    let hash = hash_data(cryptosuite, &unsecured, &config, contexts)?;
    let key = resolve_key(&verification_method)
        .ok_or_else(|| ProofError::KeyNotFound(verification_method.clone()))?;
    key.verify_strict(&hash, &signature)
        .map_err(|_| ProofError::SignatureMismatch(verification_method.clone()))?;

    let opt = |k: &str| proof.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(VerifiedProof {
        cryptosuite,
        verification_method,
        proof_purpose,
        id: opt("id"),
        created: opt("created"),
        expires: opt("expires"),
        domain: opt("domain"),
        challenge: opt("challenge"),
    })
}

/// The proofs on a document: `proof` as one object or an array of objects.
fn proofs_of(doc: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    match doc.get("proof") {
        Some(Value::Object(p)) => vec![p],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

/// The document without its proofs, except those named in `previous` (a chain), which are
/// kept as `proof` (vc-data-integrity §4.3 step 4, §4.4 step 3.2).
fn unsecured_document(
    doc: &Map<String, Value>,
    all: &[&Map<String, Value>],
    previous: &[String],
) -> Result<Map<String, Value>, ProofError> {
    let mut unsecured = doc.clone();
    unsecured.remove("proof");
    if !previous.is_empty() {
        let mut matching = Vec::with_capacity(previous.len());
        for id in previous {
            let p = all
                .iter()
                .find(|p| p.get("id").and_then(Value::as_str) == Some(id))
                .ok_or_else(|| ProofError::PreviousProofNotFound(id.clone()))?;
            matching.push(Value::Object((*p).clone()));
        }
        unsecured.insert("proof".into(), Value::Array(matching));
    }
    Ok(unsecured)
}

/// The proof configuration: the proof options with the unsecured document's `@context`.
fn proof_configuration(
    options: &Map<String, Value>,
    unsecured: &Map<String, Value>,
) -> Map<String, Value> {
    let mut config = options.clone();
    config.remove("proofValue");
    if let Some(ctx) = unsecured.get("@context") {
        config.insert("@context".into(), ctx.clone());
    }
    config
}

fn decode_proof_value(s: &str) -> Result<Signature, ProofError> {
    let body = s.strip_prefix('z').ok_or(ProofError::BadProofValue)?;
    // 64 bytes are at most 88 base58 digits.
    if body.len() > 90 {
        return Err(ProofError::BadProofValue);
    }
    let bytes = bs58::decode(body)
        .into_vec()
        .map_err(|_| ProofError::BadProofValue)?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| ProofError::BadProofValue)?;
    Ok(Signature::from_bytes(&bytes))
}

fn check_dates(proof: &Map<String, Value>) -> Result<(), ProofError> {
    for field in ["created", "expires"] {
        match proof.get(field) {
            None => {}
            Some(Value::String(s)) if parse_date_time_stamp(s).is_some() => {}
            Some(v) => {
                return Err(ProofError::BadDate {
                    field,
                    value: v.to_string(),
                })
            }
        }
    }
    Ok(())
}

fn str_field<'a>(proof: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, ProofError> {
    match proof.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(&format!("{k} must be a string"))),
    }
}

fn missing(k: &str) -> ProofError {
    malformed(&format!("{k} is missing"))
}

fn malformed(m: &str) -> ProofError {
    ProofError::MalformedProof(m.to_owned())
}
