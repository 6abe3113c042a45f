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

fn to_json_ld(value: &serde_json::Value) -> Result<CompactJsonLd, CanonError> {
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
    futures::executor::block_on(async {
        let mut ld = LdEnvironment::default();
        let expanded = doc
            .expand_with(&mut ld, contexts)
            .await
            .map_err(|e| CanonError::Expansion(e.to_string()))?;
        ld.canonical_form_of(&expanded)
            .map_err(|e| CanonError::Rdf(e.to_string()))
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
}
