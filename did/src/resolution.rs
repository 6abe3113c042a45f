//! W3C DID Resolution result shapes: the document, its metadata, and resolution metadata with
//! the standard error codes.

use serde::Serialize;

/// The DID Resolution JSON-LD context.
pub const RESOLUTION_CONTEXT: &str = "https://w3id.org/did-resolution/v1";
/// Media type of a DID document in JSON-LD.
pub const DID_LD_JSON: &str = "application/did+ld+json";

/// Standard resolution error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    InvalidDid,
    NotFound,
    MethodNotSupported,
    InvalidDidDocument,
    InvalidOptions,
    Deactivated,
    InternalError,
}

impl ErrorCode {
    /// HTTP status in the DID Resolution HTTP(S) binding.
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidDid | ErrorCode::InvalidOptions => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::Deactivated => 410,
            ErrorCode::MethodNotSupported => 501,
            ErrorCode::InvalidDidDocument | ErrorCode::InternalError => 500,
        }
    }
}

/// `didResolutionMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolutionMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// An operation that lost to a concurrent one (knoop extension of the document metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SupersededVersion {
    pub version_id: String,
    /// The version it was meant to replace.
    pub previous: Option<String>,
    pub operation: &'static str,
    pub signer: String,
    pub signed: String,
}

/// `didDocumentMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version_id: Option<String>,
    /// Set when the requested version lost to a concurrent update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// Updates of this DID that lost to concurrent ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<SupersededVersion>,
}

/// A resolution result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolutionResult {
    #[serde(rename = "@context")]
    pub context: &'static str,
    pub did_document: Option<serde_json::Value>,
    pub did_resolution_metadata: ResolutionMetadata,
    pub did_document_metadata: DocumentMetadata,
}

impl ResolutionResult {
    pub fn ok(document: serde_json::Value, meta: DocumentMetadata) -> Self {
        ResolutionResult {
            context: RESOLUTION_CONTEXT,
            did_document: Some(document),
            did_resolution_metadata: ResolutionMetadata {
                content_type: Some(DID_LD_JSON.into()),
                ..Default::default()
            },
            did_document_metadata: meta,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ResolutionResult {
            context: RESOLUTION_CONTEXT,
            did_document: None,
            did_resolution_metadata: ResolutionMetadata {
                content_type: None,
                error: Some(code),
                error_message: Some(message.into()),
            },
            did_document_metadata: DocumentMetadata::default(),
        }
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        self.did_resolution_metadata.error
    }

    /// HTTP status for this result (200 when it has no error).
    pub fn http_status(&self) -> u16 {
        self.error_code().map_or(200, |c| c.http_status())
    }
}
