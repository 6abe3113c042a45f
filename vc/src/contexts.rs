//! The JSON-LD document loader: contexts known in advance, never fetched.
//!
//! ssi bundles the contexts credentials need (credentials v1 and v2 with their examples, Data
//! Integrity v1/v2, Multikey, security v1/v2, DID v1, ...); [`Contexts::with`] adds others, such
//! as an application's own vocabulary. Loading anything else fails, so a document naming an
//! unknown context cannot be expanded or RDF-canonicalised.

use std::collections::HashMap;
use std::sync::Arc;

use ssi::json_ld::syntax::{Parse, Value as JsonLdValue};
use ssi::json_ld::{Iri, IriBuf, LoadError, Loader, LoadingResult, RemoteDocument, StaticLoader};

/// A set of JSON-LD contexts, keyed by URL: ssi's bundled ones plus any added with [`with`].
///
/// [`with`]: Contexts::with
#[derive(Clone, Default)]
pub struct Contexts {
    extra: Arc<HashMap<IriBuf, RemoteDocument>>,
}

impl std::fmt::Debug for Contexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contexts")
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A context given to [`Contexts::with`] that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    #[error("context URL {0:?} is not an IRI")]
    BadUrl(String),
    #[error("context {url} is not JSON: {message}")]
    NotJson { url: String, message: String },
}

/// The loader error for a context that is not in the set.
#[derive(Debug, thiserror::Error)]
#[error("context not bundled (no network fetch)")]
pub struct NotBundled;

impl Contexts {
    /// ssi's bundled contexts only.
    pub fn bundled() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the context document `json` for `url`.
    pub fn with(mut self, url: &str, json: &str) -> Result<Self, ContextError> {
        let iri = IriBuf::new(url.to_owned()).map_err(|_| ContextError::BadUrl(url.to_owned()))?;
        let (doc, _) = JsonLdValue::parse_str(json).map_err(|e| ContextError::NotJson {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let remote = RemoteDocument::new(
            Some(iri.clone()),
            Some("application/ld+json".parse().expect("valid media type")),
            doc,
        );
        Arc::make_mut(&mut self.extra).insert(iri, remote);
        Ok(self)
    }
}

impl Loader for Contexts {
    async fn load(&self, url: &Iri) -> LoadingResult {
        // Added contexts win, so an application may pin its own copy of a bundled one.
        if let Some(doc) = self.extra.get(url) {
            return Ok(doc.clone());
        }
        match StaticLoader.load(url).await {
            Ok(doc) => Ok(doc),
            Err(_) => Err(LoadError::new(url.to_owned(), NotBundled)),
        }
    }
}
