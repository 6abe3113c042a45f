//! Canonical forms of a JSON document: JCS (RFC 8785) for `eddsa-jcs-2022`, and RDFC-1.0
//! N-Quads of the JSON-LD document for `eddsa-rdfc-2022`.
//!
//! RDFC goes through ssi: JSON-LD expansion (with [`Contexts`], so only bundled contexts;
//! undefined terms and invalid values are errors, as in ssi's own Data Integrity code), then
//! ssi's RDFC-1.0 (URDNA2015) implementation. The loader never waits, so the async expansion
//! is driven to completion on the calling thread.

use ssi::json_ld::syntax::{Parse, Value as JsonLdValue};
use ssi::json_ld::{CompactJsonLd, Expandable};
use ssi::rdf::{AnyLdEnvironment, LdEnvironment};

use crate::contexts::Contexts;

/// A document that has no canonical form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonError {
    #[error("JCS serialisation failed: {0}")]
    Jcs(#[source] serde_json::Error),
    #[error("JSON-LD expansion failed: {0}")]
    Expansion(String),
    #[error("RDF conversion failed: {0}")]
    Rdf(String),
}

/// The RFC 8785 canonical JSON text of `value`.
pub fn jcs(value: &serde_json::Value) -> Result<String, CanonError> {
    serde_json_canonicalizer::to_string(value).map_err(CanonError::Jcs)
}

/// Refuses what the JSON-LD processor cannot take: a string or key whose percent-encodings do
/// not decode to UTF-8. Any of them may become an IRI (a term through `@vocab`, a value of an
/// `@id`-typed property), and IRIs require UTF-8 (RFC 3987 §3.1); `iref`/`pct-str` panic on
/// such an IRI while hashing it (found by the `credential` fuzz target, twice: in an `id` and
/// in a `type` term). Free text with such a sequence is refused too: it is never needed.
fn check_iris(value: &serde_json::Value) -> Result<(), CanonError> {
    match value {
        serde_json::Value::String(s) if s.contains('%') => {
            if percent_decoded_is_utf8(s) {
                Ok(())
            } else {
                Err(CanonError::Expansion(format!(
                    "{s:?}: a percent-encoding that is not UTF-8, which no IRI may hold (RFC 3987 §3.1)"
                )))
            }
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(check_iris),
        serde_json::Value::Object(o) => o.iter().try_for_each(|(k, v)| {
            check_iris(&serde_json::Value::String(k.clone()))?;
            check_iris(v)
        }),
        _ => Ok(()),
    }
}

/// Whether the bytes `%XX` sequences stand for, with the rest, form UTF-8 (a `%` not followed
/// by two hex digits stays as it is).
fn percent_decoded_is_utf8(s: &str) -> bool {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .is_ok()
}

/// Runs the JSON-LD processor, turning a panic in it (a dependency's defect on some input)
/// into an error, so that bad input is refused rather than ending the request.
fn contained<T>(f: impl FnOnce() -> Result<T, CanonError>) -> Result<T, CanonError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CanonError::Expansion(
            "the JSON-LD processor failed on this document".into(),
        ))
    })
}

fn to_json_ld(value: &serde_json::Value) -> Result<CompactJsonLd, CanonError> {
    check_iris(value)?;
    // serde_json's own output always parses; going through text avoids a serde_json feature
    // on json-syntax.
    let text = value.to_string();
    let (v, _) = JsonLdValue::parse_str(&text).map_err(|e| CanonError::Expansion(e.to_string()))?;
    Ok(CompactJsonLd(v))
}

/// The RDFC-1.0 canonical N-Quads lines of the JSON-LD document `value` (each line ends in
/// `\n`, sorted, no duplicates); concatenated they are the canonical N-Quads document.
pub fn rdfc_lines(
    value: &serde_json::Value,
    contexts: &Contexts,
) -> Result<Vec<String>, CanonError> {
    let doc = to_json_ld(value)?;
    contained(|| {
        futures::executor::block_on(async {
            let mut ld = LdEnvironment::default();
            let expanded = doc
                .expand_with(&mut ld, contexts)
                .await
                .map_err(|e| CanonError::Expansion(e.to_string()))?;
            ld.canonical_form_of(&expanded)
                .map_err(|e| CanonError::Rdf(e.to_string()))
        })
    })
}

/// The RDFC-1.0 canonical N-Quads document of the JSON-LD document `value`.
pub fn rdfc(value: &serde_json::Value, contexts: &Contexts) -> Result<String, CanonError> {
    Ok(rdfc_lines(value, contexts)?.concat())
}

/// Expands the JSON-LD document `value` with ssi's strict policy (undefined terms, invalid
/// IRIs and protected-term redefinitions are errors) and converts it to RDF, discarding the
/// result: a check that the document means something definite.
pub fn check_json_ld(value: &serde_json::Value, contexts: &Contexts) -> Result<(), CanonError> {
    let doc = to_json_ld(value)?;
    contained(|| {
        futures::executor::block_on(async {
            let mut ld = LdEnvironment::default();
            let expanded = doc
                .expand_with(&mut ld, contexts)
                .await
                .map_err(|e| CanonError::Expansion(e.to_string()))?;
            ld.quads_of(&expanded)
                .map(|_| ())
                .map_err(|e| CanonError::Rdf(e.to_string()))
        })
    })
}

#[cfg(test)]
mod iri_tests {
    use super::*;

    #[test]
    fn percent_encodings_in_iris_must_be_utf8() {
        assert!(percent_decoded_is_utf8("urn:uuid:8c%C3%A9"));
        assert!(percent_decoded_is_utf8("100% sure"));
        assert!(!percent_decoded_is_utf8("urn:uuid:8c%c9022b"));
        for bad in [
            serde_json::json!({"id": "urn:uuid:8c%c9022b-6b14"}),
            serde_json::json!({"type": ["VerifiableCredential", "AlumniCr%dential"]}),
            serde_json::json!({"ex:%ff": 1}),
        ] {
            assert!(
                matches!(check_iris(&bad), Err(CanonError::Expansion(m)) if m.contains("not UTF-8")),
                "{bad}"
            );
        }
        assert!(
            check_iris(&serde_json::json!({"name": "100% sure", "id": "urn:x:%C3%A9"})).is_ok()
        );
    }
}
