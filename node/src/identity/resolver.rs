//! One resolver for every DID method the node understands: `did:knoop` from the local registry,
//! `did:key` and `did:jwk` computed (through `ssi`), `did:web` fetched over HTTPS (rustls).
//! Results follow the W3C DID Resolution shape, with its error codes.

use std::sync::Arc;

use knoop_did::external::{resolve_did_jwk, resolve_did_key};
use knoop_did::resolution::{DocumentMetadata, ErrorCode, ResolutionResult};
use knoop_did::url::DidUrl;

use crate::identity::did_state::DidState;
use crate::identity::didweb::DidWebClient;

pub struct Resolver {
    pub knoop: Arc<DidState>,
    pub web: Option<DidWebClient>,
}

impl Resolver {
    /// Resolves a DID or DID URL (the query selects a version for `did:knoop`).
    pub async fn resolve(&self, input: &str) -> ResolutionResult {
        let url = match DidUrl::parse(input) {
            Ok(u) => u,
            Err(e) => return ResolutionResult::error(ErrorCode::InvalidDid, e.to_string()),
        };
        let did = url.did.as_str();
        match url.did.method() {
            "knoop" => self.knoop.resolve(&url),
            "key" => external(resolve_did_key(did).map_err(|e| (e.code(), e.to_string()))),
            "jwk" => external(resolve_did_jwk(did).map_err(|e| (e.code(), e.to_string()))),
            "web" => match &self.web {
                Some(c) => external(c.resolve(did).await.map_err(|e| (e.code(), e.to_string()))),
                None => ResolutionResult::error(
                    ErrorCode::MethodNotSupported,
                    "did:web is disabled in this node's config",
                ),
            },
            m => ResolutionResult::error(
                ErrorCode::MethodNotSupported,
                format!("did:{m} is not supported (knoop, key, jwk, web are)"),
            ),
        }
    }
}

fn external(r: Result<serde_json::Value, (&'static str, String)>) -> ResolutionResult {
    match r {
        Ok(doc) => ResolutionResult::ok(doc, DocumentMetadata::default()),
        Err((code, msg)) => ResolutionResult::error(code_of(code), msg),
    }
}

fn code_of(s: &str) -> ErrorCode {
    match s {
        "invalidDid" => ErrorCode::InvalidDid,
        "notFound" => ErrorCode::NotFound,
        "methodNotSupported" => ErrorCode::MethodNotSupported,
        "invalidDidDocument" => ErrorCode::InvalidDidDocument,
        _ => ErrorCode::InternalError,
    }
}
