//! Structural checks of the [VC Data Model 2.0](https://www.w3.org/TR/vc-data-model-2.0/)
//! (and 1.1, by its first `@context`): what a verifier must reject before looking at proofs.
//!
//! [`check_credential`] and [`check_presentation`] look at the JSON only (cheap, no JSON-LD).
//! [`check_semantics`] adds what needs JSON-LD: every term and type maps to an IRI and no
//! protected term is redefined; it expands the document (about as costly as RDF
//! canonicalisation), so callers that verify `eddsa-rdfc-2022` proofs get it for free, and
//! callers on hot paths with `eddsa-jcs-2022` may pin the contexts they accept instead.

use serde_json::{Map, Value};

use crate::canon;
use crate::contexts::Contexts;
use crate::xsd::parse_date_time_stamp;

pub const CREDENTIALS_V2_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
pub const CREDENTIALS_V1_CONTEXT: &str = "https://www.w3.org/2018/credentials/v1";

/// Which data model version a document claims, by its first `@context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1_1,
    V2_0,
}

/// How complete a credential must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// A credential as issued: `issuer` (with an `id`) is required.
    Issued,
    /// A credential handed to an issuer to sign: `issuer` may be absent, or an object without
    /// `id`, as the issuer fills it in (v1.1: `issuanceDate` likewise). Everything present
    /// must still be valid. The W3C test suite's input documents are of this kind.
    IssuerInput,
}

/// A document that is not a valid credential or presentation: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ModelError {
    /// JSON path of the offending value, e.g. `credentialSubject[1]` or `issuer.id`.
    pub path: String,
    pub problem: Problem,
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing")]
    Missing,
    #[error("first @context must be {CREDENTIALS_V2_CONTEXT} or {CREDENTIALS_V1_CONTEXT}")]
    BaseContext,
    #[error("@context entries must be URLs or objects")]
    BadContextEntry,
    #[error("type must be a string or an array of strings")]
    BadType,
    #[error("type must include {0}")]
    MissingType(&'static str),
    #[error("must be a URL")]
    NotUrl,
    #[error("must be a URL or an object with an id URL")]
    NotUrlOrObject,
    #[error("must be a non-empty object or array of non-empty objects")]
    EmptyOrNotObjects,
    #[error("not an XML Schema dateTimeStamp")]
    NotDateTimeStamp,
    #[error("validUntil is before validFrom")]
    ValidUntilBeforeValidFrom,
    #[error("must be a string or a language value object (@value, @language, @direction)")]
    BadLanguageValue,
    #[error("verifiableCredential entries must be credential objects")]
    CredentialNotObject,
    #[error("JSON-LD: {0}")]
    JsonLd(String),
}

fn err(path: impl Into<String>, problem: Problem) -> ModelError {
    ModelError {
        path: path.into(),
        problem,
    }
}

/// Checks the structure of a verifiable credential.
pub fn check_credential(doc: &Value, strictness: Strictness) -> Result<Version, ModelError> {
    check_credential_at(doc, strictness, "")
}

/// Checks the structure of a verifiable presentation and of the credentials it embeds
/// (which must be [`Strictness::Issued`], or enveloped).
pub fn check_presentation(doc: &Value) -> Result<Version, ModelError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| err("$", Problem::NotAnObject))?;
    let version = check_context(obj, "")?;
    check_type(obj, "", "VerifiablePresentation")?;
    check_id(obj, "")?;
    check_names(obj, "")?;
    if let Some(holder) = obj.get("holder") {
        check_url_or_object(holder, "holder", true)?;
    }
    for (i, vc) in as_list(obj.get("verifiableCredential"))
        .into_iter()
        .enumerate()
    {
        let path = format!("verifiableCredential[{i}]");
        let vc_obj = vc
            .as_object()
            .ok_or_else(|| err(path.as_str(), Problem::CredentialNotObject))?;
        if has_type(vc_obj, "EnvelopedVerifiableCredential") {
            check_enveloped(vc_obj, &path)?;
        } else {
            check_credential_at(vc, Strictness::Issued, &path)?;
        }
    }
    check_proofs(obj, "")?;
    Ok(version)
}

/// Checks what needs JSON-LD: the document expands with the bundled `contexts` (every
/// context known, every term and type mapped to an IRI, no protected term redefined,
/// valid value objects) and converts to RDF.
///
/// Proofs are left out: what a proof's terms mean is its cryptosuite's business (and a
/// legacy proof type's own context need not be bundled), so `proof` is removed first, at
/// every level.
pub fn check_semantics(doc: &Value, contexts: &Contexts) -> Result<(), ModelError> {
    let without_proofs = strip_proofs(doc);
    canon::check_json_ld(&without_proofs, contexts)
        .map_err(|e| err("$", Problem::JsonLd(e.to_string())))
}

fn strip_proofs(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| k.as_str() != "proof")
                .map(|(k, v)| (k.clone(), strip_proofs(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_proofs).collect()),
        other => other.clone(),
    }
}

fn check_credential_at(
    doc: &Value,
    strictness: Strictness,
    at: &str,
) -> Result<Version, ModelError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| err(path(at, ""), Problem::NotAnObject))?;
    let version = check_context(obj, at)?;
    check_type(obj, at, "VerifiableCredential")?;
    check_id(obj, at)?;
    check_names(obj, at)?;

    match obj.get("issuer") {
        None if strictness == Strictness::IssuerInput => {}
        None => return Err(err(path(at, "issuer"), Problem::Missing)),
        Some(issuer) => {
            check_url_or_object(
                issuer,
                &path(at, "issuer"),
                strictness == Strictness::Issued,
            )?;
            if let Some(issuer) = issuer.as_object() {
                check_names(issuer, &path(at, "issuer"))?;
            }
        }
    }

    let subjects = match obj.get("credentialSubject") {
        None => return Err(err(path(at, "credentialSubject"), Problem::Missing)),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(err(
                path(at, "credentialSubject"),
                Problem::EmptyOrNotObjects,
            ))
        }
        Some(v) => as_list(Some(v)),
    };
    for (i, s) in subjects.iter().enumerate() {
        let p = indexed(at, "credentialSubject", i, subjects.len());
        match s.as_object() {
            Some(o) if !o.is_empty() => check_optional_url(o, "id", &p)?,
            _ => return Err(err(p, Problem::EmptyOrNotObjects)),
        }
    }

    match version {
        Version::V2_0 => {
            let from = check_date(obj, "validFrom", at)?;
            let until = check_date(obj, "validUntil", at)?;
            if let (Some(f), Some(u)) = (from, until) {
                if u < f {
                    return Err(err(
                        path(at, "validUntil"),
                        Problem::ValidUntilBeforeValidFrom,
                    ));
                }
            }
        }
        Version::V1_1 => {
            let issued = check_date(obj, "issuanceDate", at)?;
            if issued.is_none() && strictness == Strictness::Issued {
                return Err(err(path(at, "issuanceDate"), Problem::Missing));
            }
            check_date(obj, "expirationDate", at)?;
        }
    }

    // Each of these is an object or array of objects with a `type`; ids, where given, are
    // URLs. A schema must also say where it is.
    for (key, id_required) in [
        ("credentialStatus", false),
        ("credentialSchema", true),
        ("refreshService", false),
        ("termsOfUse", false),
        ("evidence", false),
    ] {
        let entries = as_list(obj.get(key));
        for (i, e) in entries.iter().enumerate() {
            let p = indexed(at, key, i, entries.len());
            let o = e
                .as_object()
                .ok_or_else(|| err(p.as_str(), Problem::NotAnObject))?;
            type_list(o, &p)?;
            if id_required && !o.contains_key("id") {
                return Err(err(path(&p, "id"), Problem::Missing));
            }
            check_optional_url(o, "id", &p)?;
        }
    }
    check_proofs(obj, at)?;
    Ok(version)
}

fn check_enveloped(obj: &Map<String, Value>, at: &str) -> Result<(), ModelError> {
    check_context(obj, at)?;
    check_type(obj, at, "EnvelopedVerifiableCredential")?;
    match obj.get("id").and_then(Value::as_str) {
        Some(id) if id.starts_with("data:") => Ok(()),
        _ => Err(err(path(at, "id"), Problem::NotUrl)),
    }
}

fn check_context(obj: &Map<String, Value>, at: &str) -> Result<Version, ModelError> {
    let p = path(at, "@context");
    let ctx = obj
        .get("@context")
        .ok_or_else(|| err(p.as_str(), Problem::Missing))?;
    let entries = as_list(Some(ctx));
    let version = match entries.first().and_then(|v| v.as_str()) {
        Some(CREDENTIALS_V2_CONTEXT) => Version::V2_0,
        Some(CREDENTIALS_V1_CONTEXT) => Version::V1_1,
        _ => return Err(err(p, Problem::BaseContext)),
    };
    for e in &entries {
        match e {
            Value::String(s) if is_url(s) => {}
            Value::Object(_) => {}
            _ => return Err(err(p, Problem::BadContextEntry)),
        }
    }
    Ok(version)
}

fn check_type(
    obj: &Map<String, Value>,
    at: &str,
    required: &'static str,
) -> Result<(), ModelError> {
    let types = type_list(obj, at)?;
    if types.contains(&required) {
        Ok(())
    } else {
        Err(err(path(at, "type"), Problem::MissingType(required)))
    }
}

/// The `type` values of an object, which must be a non-empty string or array of strings.
fn type_list<'a>(obj: &'a Map<String, Value>, at: &str) -> Result<Vec<&'a str>, ModelError> {
    let p = path(at, "type");
    let t = obj
        .get("type")
        .ok_or_else(|| err(p.as_str(), Problem::Missing))?;
    let list = as_list(Some(t));
    let types: Option<Vec<&str>> = list.iter().map(|v| v.as_str()).collect();
    match types {
        Some(t) if !t.is_empty() && t.iter().all(|s| !s.is_empty()) => Ok(t),
        _ => Err(err(p, Problem::BadType)),
    }
}

fn has_type(obj: &Map<String, Value>, ty: &str) -> bool {
    as_list(obj.get("type"))
        .iter()
        .any(|v| v.as_str() == Some(ty))
}

fn check_id(obj: &Map<String, Value>, at: &str) -> Result<(), ModelError> {
    check_optional_url(obj, "id", at)
}

fn check_optional_url(obj: &Map<String, Value>, key: &str, at: &str) -> Result<(), ModelError> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::String(s)) if is_url(s) => Ok(()),
        Some(_) => Err(err(path(at, key), Problem::NotUrl)),
    }
}

/// A URL, or an object with an `id` URL (the `id` may be absent only if `id_required` is
/// false, i.e. an issuer still to be filled in).
fn check_url_or_object(v: &Value, at: &str, id_required: bool) -> Result<(), ModelError> {
    match v {
        Value::String(s) if is_url(s) => Ok(()),
        Value::Object(o) => match o.get("id") {
            None if !id_required => Ok(()),
            Some(Value::String(s)) if is_url(s) => Ok(()),
            _ => Err(err(path(at, "id"), Problem::NotUrl)),
        },
        _ => Err(err(at, Problem::NotUrlOrObject)),
    }
}

fn check_date(
    obj: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<crate::xsd::DateTimeStamp>, ModelError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => parse_date_time_stamp(s)
            .map(Some)
            .ok_or_else(|| err(path(at, key), Problem::NotDateTimeStamp)),
        Some(_) => Err(err(path(at, key), Problem::NotDateTimeStamp)),
    }
}

/// `name` and `description`: a string, a language value object, or an array of those.
fn check_names(obj: &Map<String, Value>, at: &str) -> Result<(), ModelError> {
    for key in ["name", "description"] {
        let Some(v) = obj.get(key) else { continue };
        let ok = match v {
            Value::Array(a) => !a.is_empty() && a.iter().all(is_language_value),
            other => is_language_value(other),
        };
        if !ok {
            return Err(err(path(at, key), Problem::BadLanguageValue));
        }
    }
    Ok(())
}

fn is_language_value(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Object(o) => {
            matches!(o.get("@value"), Some(Value::String(_)))
                && o.iter().all(|(k, v)| match k.as_str() {
                    "@value" => true,
                    "@language" => v.as_str().is_some_and(is_language_tag),
                    "@direction" => matches!(v.as_str(), Some("ltr" | "rtl")),
                    _ => false,
                })
        }
        _ => false,
    }
}

/// BCP 47 shape: alphanumeric subtags of 1-8 characters separated by `-`, the first
/// alphabetic.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphanumeric()))
}

fn check_proofs(obj: &Map<String, Value>, at: &str) -> Result<(), ModelError> {
    let proofs = as_list(obj.get("proof"));
    for (i, p) in proofs.iter().enumerate() {
        let pp = indexed(at, "proof", i, proofs.len());
        let o = p
            .as_object()
            .ok_or_else(|| err(pp.as_str(), Problem::NotAnObject))?;
        type_list(o, &pp)?;
    }
    Ok(())
}

/// A URL as the data model uses the word: an absolute URI, i.e. a scheme (a letter, then
/// letters, digits, `+`, `-`, `.`), a colon and a non-empty rest, without whitespace or
/// control characters.
pub fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sb = scheme.bytes();
    sb.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sb.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    }
}

fn path(at: &str, key: &str) -> String {
    match (at.is_empty(), key.is_empty()) {
        (true, true) => "$".into(),
        (true, false) => key.into(),
        (false, true) => at.into(),
        (false, false) => format!("{at}.{key}"),
    }
}

fn indexed(at: &str, key: &str, i: usize, len: usize) -> String {
    if len > 1 {
        format!("{}[{i}]", path(at, key))
    } else {
        path(at, key)
    }
}
